// The uid and group index of sessions that all live on one thread, without locks: the core
// of the single_thread and redis_cluster policies.
#ifndef HERALD_POLICY_LOCAL_INDEX_HPP
#define HERALD_POLICY_LOCAL_INDEX_HPP
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "../registry.hpp"

namespace herald::detail {

template <class Session>
struct local_index {
  struct node {
    std::shared_ptr<Session> session;
    std::string uid;
    std::size_t all_index = 0;
    std::size_t uid_index = 0;
    bool detached = false;
    std::vector<std::string> groups;  // the groups it is in (few, so a vector)
  };
  // Sessions in one array so a broadcast walks memory in order.
  struct entry {
    Session* session;
    node* owner;
  };
  using members = std::unordered_set<node*>;

  // Indexes a new session; `first_of_uid` tells whether its uid had no local session before.
  std::pair<node*, bool> attach(std::shared_ptr<Session> session, std::string uid) {
    auto n = std::make_unique<node>();
    n->session = std::move(session);
    n->uid = std::move(uid);
    auto it = uids.find(std::string_view(n->uid));
    const bool first_of_uid = it == uids.end();
    if (first_of_uid) it = uids.emplace(n->uid, std::vector<node*>{}).first;
    n->uid_index = it->second.size();
    it->second.push_back(n.get());
    n->all_index = all.size();
    all.push_back({n->session.get(), n.get()});
    return {n.release(), first_of_uid};
  }

  struct ignore_group {
    void operator()(std::string_view) const noexcept {}
  };

  // Removes a session from the index and its groups (once); true when it was the last local
  // session of its uid. `emptied(group)` is called for each group it was the last member of.
  template <class Emptied = ignore_group>
  bool detach(node* n, Emptied&& emptied = {}) noexcept {
    if (n->detached) return false;
    n->detached = true;
    const std::size_t i = n->all_index;
    all[i] = all.back();
    all[i].owner->all_index = i;
    all.pop_back();
    for (auto& g : n->groups)
      if (leave_group(n, g)) emptied(std::string_view(g));
    n->groups.clear();
    auto it = uids.find(std::string_view(n->uid));
    auto& list = it->second;
    list[n->uid_index] = list.back();
    list[n->uid_index]->uid_index = n->uid_index;
    list.pop_back();
    if (!list.empty()) return false;
    uids.erase(it);
    return true;
  }

  // False if already a member.
  bool join_group(node* n, std::string_view group) {
    for (auto& g : n->groups)
      if (g == group) return false;
    auto it = groups.find(group);
    if (it == groups.end()) it = groups.emplace(std::string(group), members{}).first;
    it->second.insert(n);
    n->groups.emplace_back(group);
    return true;
  }

  // False if not a member.
  bool leave(node* n, std::string_view group) {
    for (std::size_t i = 0; i < n->groups.size(); ++i) {
      if (n->groups[i] != group) continue;
      leave_group(n, n->groups[i]);
      n->groups[i] = std::move(n->groups.back());
      n->groups.pop_back();
      return true;
    }
    return false;
  }

  // True when `n` was the group's last member (the group is gone).
  bool leave_group(node* n, std::string_view group) {
    auto it = groups.find(group);
    if (it == groups.end()) return false;
    it->second.erase(n);
    if (!it->second.empty()) return false;
    groups.erase(it);
    return true;
  }

  std::size_t deliver_to_group(std::string_view group, const message& m) const {
    auto it = groups.find(group);
    if (it == groups.end()) return 0;
    std::size_t queued = 0;
    for (auto* n : it->second) queued += counts_as_queued(session_access::send_here(*n->session, m));
    return queued;
  }

  std::size_t deliver_to_uid(std::string_view uid, const message& m) const {
    auto it = uids.find(uid);
    if (it == uids.end()) return 0;
    std::size_t queued = 0;
    for (auto* n : it->second) queued += counts_as_queued(session_access::send_here(*n->session, m));
    return queued;
  }

  std::size_t deliver_to_all(const message& m) const {
    std::size_t queued = 0;
    for (std::size_t i = 0; i < all.size(); ++i) queued += counts_as_queued(session_access::send_here(*all[i].session, m));
    return queued;
  }

  // Starts the closing handshake of every indexed session; returns how many.
  std::size_t close_all(std::uint16_t code, std::string_view reason) const {
    for (auto& e : all) e.session->close(code, std::string(reason));
    return all.size();
  }

  // Starts the closing handshake of every session of `uid`; returns how many.
  std::size_t close_uid(std::string_view uid, std::uint16_t code, std::string_view reason) const {
    auto it = uids.find(uid);
    if (it == uids.end()) return 0;
    for (auto* n : it->second) n->session->close(code, std::string(reason));
    return it->second.size();
  }

  // ---- queries, the same on every policy built on this index ----

  std::size_t group_size(std::string_view group) const {
    auto it = groups.find(group);
    return it == groups.end() ? 0 : it->second.size();
  }
  static bool is_member(const node* n, std::string_view group) {
    for (auto& g : n->groups)
      if (g == group) return true;
    return false;
  }
  template <class F>
  void for_each_uid(F&& f) const {
    for (const auto& [uid, list] : uids) f(std::string_view(uid), list.size());
  }
  std::vector<std::string> uid_list() const {
    std::vector<std::string> out;
    out.reserve(uids.size());
    for_each_uid([&out](std::string_view uid, std::size_t) { out.emplace_back(uid); });
    return out;
  }
  std::size_t sessions_of(std::string_view uid) const {
    auto it = uids.find(uid);
    return it == uids.end() ? 0 : it->second.size();
  }
  std::vector<std::shared_ptr<Session>> sessions_list(std::string_view uid) const {
    std::vector<std::shared_ptr<Session>> out;
    auto it = uids.find(uid);
    if (it == uids.end()) return out;
    out.reserve(it->second.size());
    for (auto* n : it->second) out.push_back(n->session);
    return out;
  }

  std::vector<entry> all;
  std::unordered_map<std::string, std::vector<node*>, transparent_hash, std::equal_to<>> uids;
  std::unordered_map<std::string, members, transparent_hash, std::equal_to<>> groups;
};

// The `replace` duplicate policy: unindexes every session of `uid` through the policy's own
// detach (which also updates metrics or Redis subscriptions) and closes it with 4000.
template <class State>
void replace_older(State& st, std::string_view uid) {
  auto it = st.uids.find(uid);
  if (it == st.uids.end()) return;
  const auto older = it->second;  // copy: detach() edits the list
  for (auto* n : older) {
    st.detach(n);
    n->session->close(ws::close_code::replaced, "replaced by a newer login");
  }
}

}  // namespace herald::detail

#endif  // HERALD_POLICY_LOCAL_INDEX_HPP
