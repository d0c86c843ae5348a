// placeholder
#include "commands.h"
namespace rs::cli { void add_sweep(CLI::App &) {} }
