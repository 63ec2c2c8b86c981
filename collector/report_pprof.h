// The pprof writer: renders a Report as a gzipped profile.proto (github.com/google/pprof)
// shaped like Go's block profile, so `go tool pprof`, Grafana Pyroscope, Parca and
// speedscope read it. One sample per hotspot with two values, contentions/count and
// delay/nanoseconds; locations come from the hotspot's symbolized stack (a Line per
// inlined function, with file and line), each module is a mapping; labels carry
// kind, path and allowed. Built with the classes generated from pprof's
// profile.proto (proto/pprof_profile.proto).
#pragma once

#include <ostream>
#include <string>

#include "collector/report_model.h"

namespace blockwatch::collector {

// Serialized, uncompressed profile.proto bytes. Deterministic for a given Report
// (the same input gives the same bytes), which the golden tests rely on.
std::string encode_pprof_profile(const Report& report);

// gzip (RFC 1952) of `bytes`, header mtime 0. Throws std::runtime_error if zlib fails.
std::string gzip_bytes(const std::string& bytes);

// The `.pb.gz` report: gzip(encode_pprof_profile(report)).
void write_pprof_report(const Report& report, std::ostream& out);

// What happened between two snapshots of the same live collector: hotspots of
// `later` with the counts and times of `earlier` subtracted (matched by exe, kind,
// path and stack functions); hotspots that did not grow are dropped. Used for
// `/debug/pprof/block?seconds=N` and for each Pyroscope push. Summary fields are
// subtracted too; processes are those of `later`.
Report subtract_report(const Report& later, const Report& earlier);

}  // namespace blockwatch::collector
