# preload tests: filled in below
