# The HTML report (viewer engineer): viewer/build.mjs bundles the report page from
# viewer/src and its npm packages into one self-contained template and a generated
# C++ source holding it; blockwatch_report_html wraps that source
# (write_html_report, live_dashboard_html).
#
# The build needs node and viewer/node_modules (scripts/setup.sh runs `npm ci`). If
# they are missing, configuring fails with a message, so the suite can never pass
# without the HTML report. -DBLOCKWATCH_HTML_REPORT=OFF skips it knowingly.
option(BLOCKWATCH_HTML_REPORT "Build the HTML report and live dashboard (needs node + npm ci in viewer/)" ON)

set(blockwatch_viewer_dir ${PROJECT_SOURCE_DIR}/viewer)
if(BLOCKWATCH_HTML_REPORT)
  find_program(BLOCKWATCH_NODE node)
  if(NOT BLOCKWATCH_NODE OR NOT EXISTS ${blockwatch_viewer_dir}/node_modules/esbuild/package.json
     OR NOT EXISTS ${blockwatch_viewer_dir}/node_modules/d3-flame-graph/package.json)
    message(FATAL_ERROR
      "blockwatch: the HTML report needs node and the viewer's npm packages "
      "(viewer/node_modules). Run scripts/setup.sh (it runs `npm ci` in viewer/), "
      "or configure with -DBLOCKWATCH_HTML_REPORT=OFF to build without the HTML report.")
  endif()

  file(GLOB blockwatch_viewer_sources CONFIGURE_DEPENDS ${blockwatch_viewer_dir}/src/*)
  set(blockwatch_html_gen_dir ${CMAKE_CURRENT_BINARY_DIR}/generated)
  # The built template (also used by tests/viewer) and the C++ source that embeds it.
  set(BLOCKWATCH_REPORT_TEMPLATE ${blockwatch_html_gen_dir}/report-template.html
      CACHE INTERNAL "the built report page template")
  add_custom_command(
    OUTPUT ${blockwatch_html_gen_dir}/report_html_assets.cc ${blockwatch_html_gen_dir}/report-template.html
    COMMAND ${BLOCKWATCH_NODE} ${blockwatch_viewer_dir}/build.mjs
            --html ${blockwatch_html_gen_dir}/report-template.html
            --cc ${blockwatch_html_gen_dir}/report_html_assets.cc
    DEPENDS ${blockwatch_viewer_sources} ${blockwatch_viewer_dir}/build.mjs
            ${blockwatch_viewer_dir}/package-lock.json
    WORKING_DIRECTORY ${blockwatch_viewer_dir}
    COMMENT "Building the HTML report page (viewer/)"
    VERBATIM)

  add_library(blockwatch_report_html STATIC
    ${CMAKE_CURRENT_LIST_DIR}/report_html.cc
    ${blockwatch_html_gen_dir}/report_html_assets.cc)
  target_include_directories(blockwatch_report_html PUBLIC ${PROJECT_SOURCE_DIR})
else()
  message(WARNING "blockwatch: BLOCKWATCH_HTML_REPORT=OFF: no HTML report, no live dashboard, no browser tests")
endif()
