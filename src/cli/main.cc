#include <cstdio>
int main() { std::puts("vfiobox"); return 0; }
