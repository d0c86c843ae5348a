# routescope — the two commands in README.md: `make demo` (main job) and `make test` (all tests).
# Both install Debian dependencies, obtain llama.cpp v0.5.0 (cached in ~/.cache/routescope) and build.
# `make install PREFIX=DIR` puts bin/routescope and share/routescope/{data,models,web} under DIR;
# `make deb` builds a Debian package of the same tree (cpack).
BUILD ?= build
PREFIX ?= /usr/local
JOBS ?= $(shell nproc)
CMAKE_ARGS ?=

.PHONY: all deps build demo test test-asan install deb bench bench-gpu format clean

all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/build.ninja: | deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_ARGS)

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

demo: build
	$(BUILD)/src/cli/routescope demo

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 900

# AddressSanitizer + UBSan configuration (CI runs it too).
test-asan:
	$(MAKE) test BUILD=build-asan CMAKE_ARGS="-DCMAKE_BUILD_TYPE=RelWithDebInfo -DRS_SANITIZE=ON $(CMAKE_ARGS)"

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

deb: build
	cd $(BUILD) && cpack -G DEB

bench: build
	$(BUILD)/bench/bench_record_overhead
	$(BUILD)/bench/bench_steer_overhead
	$(BUILD)/bench/bench_rpc_overhead
	$(BUILD)/bench/bench_analyze
	ROUTESCOPE=$(BUILD)/src/cli/routescope bench/bench_finetune.sh
	ROUTESCOPE=$(BUILD)/src/cli/routescope BENCH_RECORD_OVERHEAD=$(BUILD)/bench/bench_record_overhead \
	  bench/bench_eager_vs_trace.sh

# plain decode vs tap vs trace with every layer on a CUDA GPU (skips cleanly without one)
bench-gpu:
	bench/bench_gpu_record.sh

format:
	clang-format -i $$(git ls-files '*.cpp' '*.h')

clean:
	rm -rf build build-asan
