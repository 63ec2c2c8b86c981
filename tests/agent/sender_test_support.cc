// The functions whose pcs the sender tests' records carry (sender_test_support.h).
#include "sender_test_support.h"

extern "C" __attribute__((noinline)) int stack_function_a(int x) {
  asm volatile("" ::: "memory");
  return x * 3 + 1;
}
extern "C" __attribute__((noinline)) int stack_function_b(int x) {
  asm volatile("" ::: "memory");
  return x * 5 + 2;
}
