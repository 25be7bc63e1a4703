// registry<Session, single_thread>: one io_context thread owns the registry and every
// session in it, with no locks, like the seed's `count = 1` worker. Every method may be called
// from any thread: on the owner's thread it runs at once; from another thread a send
// (unicast, broadcast, send_to_group, close_all, close_uid) is handed to the owner's thread and
// returns 0, and a query waits for the owner's thread to answer it (see one_thread.hpp).
#ifndef HERALD_POLICY_SINGLE_THREAD_HPP
#define HERALD_POLICY_SINGLE_THREAD_HPP
#include <memory>
#include <string>
#include <utility>

#include "../registry.hpp"
#include "one_thread.hpp"

namespace herald {

struct single_thread {};

namespace detail {
template <class Session>
struct single_thread_state : one_thread_state<Session, single_thread_state<Session>> {
  using base = one_thread_state<Session, single_thread_state<Session>>;
  using node = typename base::node;
  using base::base;

  node* attach(std::shared_ptr<Session> session, std::string uid) {
    auto [n, first_of_uid] = local_index<Session>::attach(std::move(session), std::move(uid));
    if (first_of_uid) this->count(*n->session, metrics::uids);
    return n;
  }
  void detach(node* n) noexcept {
    if (local_index<Session>::detach(n)) this->count(*n->session, metrics::uids, -1);
  }
};
}  // namespace detail

template <class Session>
class registry<Session, single_thread>
    : public detail::one_thread_registry<Session, single_thread, detail::single_thread_state<Session>> {
  using base = detail::one_thread_registry<Session, single_thread, detail::single_thread_state<Session>>;

 public:
  // Without an executor, the registry's thread is that of the first session that logs in.
  explicit registry(registry_options options = {}) : base(std::make_shared<state>(std::move(options))) {}
  registry(asio::any_io_executor ex, registry_options options = {}) : registry(std::move(options)) {
    this->state_->owner.adopt(std::move(ex));
  }

 private:
  friend class binding<Session, single_thread>;
  using state = detail::single_thread_state<Session>;
};

}  // namespace herald

#endif  // HERALD_POLICY_SINGLE_THREAD_HPP
