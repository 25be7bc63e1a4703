// The on-CPU time of another process, for the benchmark drivers (load_client, history_bench).
#ifndef HERALD_BENCHMARKS_PROC_CPU_HPP
#define HERALD_BENCHMARKS_PROC_CPU_HPP
#include <dirent.h>

#include <fstream>
#include <string>

namespace bench_proc {

// The sum of the first field of /proc/PID/task/*/schedstat: ns on the CPU, user and kernel,
// of all its threads (to the nanosecond, where utime and stime come in 10 ms ticks); -1 if
// unreadable.
inline long long on_cpu_ns(long pid) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return -1;
  long long ns = 0;
  bool any = false;
  while (const dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream in(dir + "/" + e->d_name + "/schedstat");
    long long v = 0;
    if (in >> v) ns += v, any = true;
  }
  ::closedir(d);
  return any ? ns : -1;
}

}  // namespace bench_proc

#endif  // HERALD_BENCHMARKS_PROC_CPU_HPP
