// The `blockwatch` subcommands, each taking the arguments after its name and
// returning the process exit status.
#pragma once

#include <string>
#include <vector>

#include "collector/cli_common.h"

namespace blockwatch::collector {

int run_command(const std::vector<std::string>& args);
int run_with_collector(const std::vector<std::string>& command, const std::string& library,
                       const Pipeline& pipeline);
int report_command(const std::vector<std::string>& args);

}  // namespace blockwatch::collector
