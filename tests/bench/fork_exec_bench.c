/* fork_exec_bench: what spawning a short program costs with the preload, against
 * without it, in one run (label bench; no timing assertion). A runner that
 * spawns thousands of processes pays this on every one.
 *
 * Each variant re-runs this binary ("inner" mode) with its own environment; the
 * inner process spawns /bin/true N times (fork+execve, or posix_spawn) and
 * prints wall and CPU ms per spawn (its own CPU plus its children's). Rounds
 * interleave the variants; the median of each is compared with the bare run,
 * and the fastest round (wall): on a loaded machine the median wall time
 * mostly measures the scheduler, the minimum what a spawn itself costs. CPU
 * time (the inner process's and its children's) is the steadiest measure:
 *   bare           no preload
 *   dormant        preloaded, but no BLOCKWATCH_WORKERS section selects the
 *                  process (BLOCKWATCH_EXE names another program): the
 *                  process and /bin/true are dormant. Target: within 1.2x.
 *   watched-cmd    preloaded, the spawning process is CMD (watched, sender and
 *                  watchdog threads running), /bin/true is dormant: what
 *                  `blockwatch run` gives a test runner spawning tools
 *   watched-all    preloaded without BLOCKWATCH_EXE: every process is watched,
 *                  /bin/true too (starts its own threads and says goodbye)
 * No collector is configured: what a stream costs is not measured here.
 *
 * usage: fork_exec_bench [LIBRARY] [--rounds R] [--spawns N] */
#define _GNU_SOURCE
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char** environ;

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

static double cpu_ms(int who) {
  struct rusage usage;
  getrusage(who, &usage);
  return (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1e3 +
         (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1e-3;
}

/* Inner mode: spawn /bin/true `spawns` times, print "wall_ms cpu_ms" per spawn. */
static int inner(int spawns, int use_posix_spawn) {
  char* argv[] = {"/bin/true", NULL};
  const double wall_start = now_ms();
  const double cpu_start = cpu_ms(RUSAGE_SELF) + cpu_ms(RUSAGE_CHILDREN);
  for (int i = 0; i < spawns; ++i) {
    pid_t pid;
    if (use_posix_spawn) {
      if (posix_spawn(&pid, argv[0], NULL, NULL, argv, environ) != 0) return 1;
    } else {
      pid = fork();
      if (pid == 0) {
        execve(argv[0], argv, environ);
        _exit(127);
      }
    }
    int status;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || status != 0) return 1;
  }
  const double cpu = cpu_ms(RUSAGE_SELF) + cpu_ms(RUSAGE_CHILDREN) - cpu_start;
  printf("%f %f\n", (now_ms() - wall_start) / spawns, cpu / spawns);
  return 0;
}

enum { kVariants = 4, kMaxRounds = 101 };
static const char* const kNames[kVariants] = {"bare", "dormant", "watched-cmd", "watched-all"};

/* Runs the inner mode of `self` with the variant's environment. */
static int measure(const char* self, const char* library, int variant, int spawns,
                   int use_posix_spawn, double* wall, double* cpu) {
  char preload[4200], exe[4200], spawns_text[32];
  snprintf(preload, sizeof preload, "LD_PRELOAD=%s", library);
  snprintf(exe, sizeof exe, "BLOCKWATCH_EXE=%s", variant == 1 ? "/nonexistent" : self);
  snprintf(spawns_text, sizeof spawns_text, "%d", spawns);
  char* env[8];
  int n = 0;
  if (variant > 0) env[n++] = preload;
  if (variant == 1 || variant == 2) env[n++] = exe;
  env[n++] = "BLOCKWATCH_WORKERS=main";
  env[n] = NULL;
  char* argv[] = {(char*)self, "--inner", spawns_text, use_posix_spawn ? "spawn" : "fork", NULL};
  int out[2];
  if (pipe(out) != 0) return -1;
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], 1);
    execve(self, argv, env);
    _exit(127);
  }
  close(out[1]);
  char text[128] = {0};
  const ssize_t got = read(out[0], text, sizeof text - 1);
  close(out[0]);
  int status;
  waitpid(pid, &status, 0);
  if (got <= 0 || status != 0 || sscanf(text, "%lf %lf", wall, cpu) != 2) return -1;
  return 0;
}

static int compare_doubles(const void* a, const void* b) {
  const double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

static double median(double* values, int count) {
  qsort(values, count, sizeof *values, compare_doubles);
  return values[count / 2];
}

static double minimum(const double* values, int count) {
  double low = values[0];
  for (int i = 1; i < count; ++i) low = values[i] < low ? values[i] : low;
  return low;
}

int main(int argc, char** argv) {
  if (argc == 4 && strcmp(argv[1], "--inner") == 0) {
    return inner(atoi(argv[2]), strcmp(argv[3], "spawn") == 0);
  }
  const char* library = BW_BENCH_LIBRARY_DEFAULT;
  int rounds = 15, spawns = 40;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
      rounds = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--spawns") == 0 && i + 1 < argc) {
      spawns = atoi(argv[++i]);
    } else {
      library = argv[i];
    }
  }
  if (rounds < 1 || rounds > kMaxRounds || spawns < 1) return 2;
  char self[4096];
  const ssize_t length = readlink("/proc/self/exe", self, sizeof self - 1);
  if (length <= 0) return 2;
  self[length] = '\0';
  printf("fork_exec_bench: /bin/true spawned %d times per round, %d rounds, median per spawn\n",
         spawns, rounds);
  for (int use_posix_spawn = 0; use_posix_spawn < 2; ++use_posix_spawn) {
    static double wall[kVariants][kMaxRounds], cpu[kVariants][kMaxRounds];
    for (int round = 0; round < rounds; ++round) {
      for (int v = 0; v < kVariants; ++v) {
        if (measure(self, library, v, spawns, use_posix_spawn, &wall[v][round], &cpu[v][round])) {
          fprintf(stderr, "fork_exec_bench: variant %s failed\n", kNames[v]);
          return 1;
        }
      }
    }
    const char* how = use_posix_spawn ? "posix_spawn" : "fork+exec";
    double bare_wall = 0, bare_min = 0, bare_cpu = 0;
    for (int v = 0; v < kVariants; ++v) {
      const double low = minimum(wall[v], rounds);
      const double w = median(wall[v], rounds), c = median(cpu[v], rounds);
      if (v == 0) bare_wall = w, bare_min = low, bare_cpu = c;
      printf(
          "%-11s %-12s cpu %6.3f ms (%4.2fx)  wall median %6.3f ms (%4.2fx)  min %6.3f ms "
          "(%4.2fx)\n",
          how, kNames[v], c, c / bare_cpu, w, w / bare_wall, low, low / bare_min);
    }
  }
  return 0;
}
