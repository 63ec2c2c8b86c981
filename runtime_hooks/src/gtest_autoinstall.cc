// Linked through the CMake target blockwatch::gtest: installs blockwatch's
// GoogleTest listener before main() runs, so a test binary needs no code change.
// GoogleTest keeps listeners across InitGoogleTest, so installing early is safe.
#include "blockwatch/gtest.hpp"

namespace {

const bool kListenerInstalled = [] {
  blockwatch::InstallGTestListener();
  return true;
}();

}  // namespace
