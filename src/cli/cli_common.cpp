// What routescope and routescope-train share: the command-line runner (bad input becomes one line on
// stderr) and the defaults of the subcommands.
#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "routescope/common.h"
#include "routescope/resources.h"

namespace rs::cli {

std::string default_data_dir() {
    return resource_path("ROUTESCOPE_DATA", "data", RS_DEFAULT_DATA_DIR);
}

std::string default_model() {
    return resource_path("ROUTESCOPE_MODEL", "models/tiny-polyglot-moe.gguf", RS_DEFAULT_MODEL);
}

std::string trainer_path() {
    std::error_code ec;
    const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    return ((ec ? std::filesystem::path("routescope") : exe).parent_path() / "routescope-train").string();
}

std::vector<std::string> split_list(const std::string & s) {
    std::vector<std::string> out;
    size_t b = 0;
    while (b <= s.size()) {
        const size_t e = std::min(s.find(',', b), s.size());
        if (e > b) out.push_back(s.substr(b, e - b));
        b = e + 1;
    }
    return out;
}

}  // namespace rs::cli

// A message on one line: embedded newlines (a quoted input line, a library message) become spaces.
static std::string one_line(std::string s) {
    for (char & c : s)
        if (c == '\n' || c == '\r') c = ' ';
    return s;
}

int rs::cli::run_app(CLI::App & app, int argc, char ** argv) {
    // One error style for bad input everywhere (issue #15): `routescope: <file>: <what> (<what to do>)`,
    // one line, exit 1. Help and version requests keep CLI11's output and exit 0.
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp & e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp & e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion & e) {
        return app.exit(e);
    } catch (const CLI::ParseError & e) {
        if (e.get_exit_code() == 0) return app.exit(e);
        std::fprintf(stderr, "routescope: %s (see `routescope --help`)\n", one_line(e.what()).c_str());
        return 1;
    } catch (const rs::Error & e) {
        std::fprintf(stderr, "routescope: %s\n", one_line(e.what()).c_str());
        return 1;
    } catch (const nlohmann::json::exception & e) {  // a JSON value of the wrong type that escaped a check
        std::fprintf(stderr, "routescope: unexpected JSON value: %s (check the JSON files given)\n",
                     one_line(rs::json_error_text(e.what())).c_str());
        return 1;
    } catch (const std::exception & e) {  // e.g. filesystem errors: still one line, never a crash
        std::fprintf(stderr, "routescope: %s\n", one_line(e.what()).c_str());
        return 1;
    }
    return 0;
}
