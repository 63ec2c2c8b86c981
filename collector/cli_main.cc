// main() of `blockwatch`: dispatches to the subcommands (run, report) and answers
// --help and --version.
#include <iostream>
#include <string>
#include <vector>

#include "collector/cli.h"

namespace {

void print_help() {
  std::cout << R"(blockwatch: catch executor worker threads blocking and stalling.

usage:
  blockwatch run [--workers SEL] [--threshold DUR] [--stall-threshold DUR] [--config FILE]
                 [--report FILE]... [--fail-on RULE]... [--baseline FILE.json] -- CMD [ARGS...]
  blockwatch report INPUT [--report FILE]... [--config FILE]     re-render a saved run
  blockwatch --version

  SEL: main, name:REGEX (comma-separated). DUR: 0, 250us, 1ms, 2s.
  RULE: any, blocking>=DUR, stall>=DUR, turn-stall>=DUR, kind:KIND, path:NAME[>=DUR]
  (repeatable).
  Report formats by extension: .txt .json .html .pb.gz .folded .xml .bwrec.
  `blockwatch run --help` and `blockwatch report --help` say more; the long-lived
  collector is `blockwatchd`.
)";
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    print_help();
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "--version") {
    std::cout << "blockwatch " << blockwatch::collector::kBlockwatchVersion << '\n';
    return 0;
  }
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "run") return blockwatch::collector::run_command(rest);
  if (args[0] == "report") return blockwatch::collector::report_command(rest);
  std::cerr << "blockwatch: unknown command " << args[0] << " (try --help)\n";
  return 2;
}
