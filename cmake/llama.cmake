# Provides the CMake target `llama` (libllama + ggml), in this order (docs/architecture.md, "Obtaining llama.cpp"):
#   1. -DLLAMA_CPP_DIR=<llama.cpp v0.5.0 source tree>: built in-tree with add_subdirectory;
#   2. an installed package (find_package(llama), e.g. -DCMAKE_PREFIX_PATH=/opt/llama);
#   3. scripts/get-llama.sh: unpacks the source that node-llama-cpp@3.22.1 ships on the npm registry
#      and builds static CPU libraries into ~/.cache/routescope (once per version and options).
# CUDA: pass -DGGML_CUDA=ON; for (1) it reaches ggml directly, for (3) it is forwarded to the script.

if(LLAMA_CPP_DIR)
  message(STATUS "routescope: llama.cpp from source tree ${LLAMA_CPP_DIR}")
  set(LLAMA_BUILD_COMMON OFF CACHE BOOL "" FORCE)
  set(LLAMA_BUILD_TESTS OFF CACHE BOOL "" FORCE)
  set(LLAMA_BUILD_TOOLS OFF CACHE BOOL "" FORCE)
  set(LLAMA_BUILD_EXAMPLES OFF CACHE BOOL "" FORCE)
  set(LLAMA_BUILD_SERVER OFF CACHE BOOL "" FORCE)
  set(BUILD_SHARED_LIBS OFF CACHE BOOL "" FORCE)
  add_subdirectory(${LLAMA_CPP_DIR} ${CMAKE_BINARY_DIR}/llama.cpp EXCLUDE_FROM_ALL SYSTEM)
  return()
endif()

# llama.cpp's rpc-server next to an installed package (scripts/get-llama.sh builds one): the RPC
# tests offload layers to it. -DRS_RPC_SERVER=<path> points elsewhere.
macro(rs_find_rpc_server)
  if(NOT EXISTS "${RS_RPC_SERVER}" AND EXISTS ${llama_DIR}/../../../bin/rpc-server)
    get_filename_component(_rs_rpc ${llama_DIR}/../../../bin/rpc-server ABSOLUTE)
    set(RS_RPC_SERVER ${_rs_rpc} CACHE FILEPATH "llama.cpp rpc-server (RPC tests)" FORCE)
  endif()
endmacro()

find_package(llama QUIET)
if(llama_FOUND OR TARGET llama)
  message(STATUS "routescope: llama.cpp from installed package ${llama_DIR}")
  rs_find_rpc_server()
  return()
endif()

set(_rs_llama_args "")
if(GGML_CUDA)
  set(_rs_llama_args "-DGGML_CUDA=ON")
  if(CMAKE_CUDA_ARCHITECTURES)
    string(APPEND _rs_llama_args " -DCMAKE_CUDA_ARCHITECTURES=${CMAKE_CUDA_ARCHITECTURES}")
  endif()
endif()
message(STATUS "routescope: obtaining llama.cpp v0.5.0 with scripts/get-llama.sh ${_rs_llama_args}")
execute_process(
  COMMAND ${CMAKE_COMMAND} -E env "LLAMA_CMAKE_ARGS=${_rs_llama_args}"
          ${PROJECT_SOURCE_DIR}/scripts/get-llama.sh
  OUTPUT_VARIABLE _rs_llama_out OUTPUT_STRIP_TRAILING_WHITESPACE
  RESULT_VARIABLE _rs_llama_rc)
if(NOT _rs_llama_rc EQUAL 0)
  message(FATAL_ERROR "scripts/get-llama.sh failed (exit ${_rs_llama_rc}); see the messages above")
endif()
string(REGEX REPLACE ".*\n" "" _rs_llama_prefix "${_rs_llama_out}")
find_package(llama REQUIRED PATHS ${_rs_llama_prefix} NO_DEFAULT_PATH)
rs_find_rpc_server()
if(GGML_CUDA)
  find_package(CUDAToolkit REQUIRED)
endif()
