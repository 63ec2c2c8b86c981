// A shared library the preload target links: its constructor runs before
// libblockwatch.so's (a preloaded object is initialised after the program's own
// libraries), so the hooked calls it makes arrive before blockwatch is set up.
#pragma once

extern "C" int early_hooks_ran();
