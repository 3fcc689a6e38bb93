# palaver: build, test, install.  `make help` lists the targets.

VERSION    := 0.1.0
PREFIX     ?= /usr/local
DESTDIR    ?=
BUILD      ?= build
CC         ?= cc
ARCH_FLAGS ?= -march=native
OPT        ?= -O2
CUDA       ?= 0
SAN        ?= 0

PKGS := ncursesw readline yaml-0.1 sqlite3 libcurl jansson
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
# Debian's readline.pc may be absent on older releases: fall back to -lreadline.
ifeq ($(PKG_LIBS),)
PKG_LIBS := -lncursesw -lreadline -lyaml -lsqlite3 -lcurl -ljansson
endif
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null || echo -lcmocka)

WARN     := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
CPPFLAGS += -DPALAVER_VERSION='"$(VERSION)"' -D_GNU_SOURCE
CFLAGS   ?=
CFLAGS   += -std=c11 $(OPT) -g $(WARN) $(ARCH_FLAGS) -pthread -MMD -MP $(PKG_CFLAGS)
LDLIBS   += $(PKG_LIBS) -lm -pthread

ifeq ($(SAN),1)
CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif

# Every .c file in the module folders is part of the program; the tests link
# the same objects less app/main.o.  Files named *_avx2.c / *_avx512vl.c / *_avx512.c hold
# SIMD kernels chosen at run time and get their instruction set here.
SRCS := $(wildcard lib/*.c app/*.c engine/*.c ui/*.c history/*.c)
HDRS := $(wildcard lib/*.h app/*.h engine/*.h ui/*.h history/*.h)

# The layers of docs/ARCHITECTURE.md, enforced: each folder is compiled with
# only the include folders it may use, so a header from a layer above (or
# an engine internal) does not compile.  app/ sees the engine through
# engine.h alone ($(BUILD)/api holds a link to it); the commands listed in
# ENGINE_INTERNAL drive the engine's parts directly (ARCHITECTURE.md says why).
API_DIR     := $(BUILD)/api
INC_lib     := -Ilib
INC_engine  := -Ilib -Iengine
INC_history := -Ilib -Ihistory
INC_ui      := -Ilib -Iui
INC_app     := -Ilib -Iapp -Iui -Ihistory -I$(API_DIR)
INC_tests   := -Ilib -Iapp -Iengine -Iui -Ihistory -Itests
ENGINE_INTERNAL := app/bench_bandwidth.c app/bench_cold.c app/bench_kernels.c app/bench_model.c app/bench_tokenizer.c \
	app/cmd_inspect.c app/cmd_logits.c app/cmd_mkmodel.c app/cmd_perplexity.c app/cmd_tokenize.c \
	app/cmd_template.c
layer_inc = $(INC_$(firstword $(subst /, ,$(1)))) $(if $(filter $(1),$(ENGINE_INTERNAL)),-Iengine) \
	$(if $(filter $(1),$(GPU_CLIENTS)),-Igpu/cuda)
# the engine's CUDA backend calls gpu/cuda/cuda_ops.h (plain C)
GPU_CLIENTS := engine/backend_cuda.c
OBJS := $(SRCS:%.c=$(BUILD)/%.o)
MAIN_OBJ := $(BUILD)/app/main.o
LIB_OBJS := $(filter-out $(MAIN_OBJ),$(OBJS))

# CUDA=1: gpu/cuda/*.cu compiled by nvcc into the library: machine code for
# sm_80 and sm_90 (the tiled matmul uses BF16 tensor cores, which start with
# sm_80) and sm_90 PTX that newer GPUs compile when loading.
ifeq ($(CUDA),1)
CUDA_HOME  ?= /usr/local/cuda
NVCC       ?= $(CUDA_HOME)/bin/nvcc
CUDA_ARCHS ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
	-gencode arch=compute_90,code=compute_90
CU_SRCS    := $(wildcard gpu/cuda/*.cu)
CU_OBJS    := $(CU_SRCS:%.cu=$(BUILD)/%.o)
LIB_OBJS   += $(CU_OBJS)
CPPFLAGS   += -DPALAVER_CUDA=1 -I$(CUDA_HOME)/include
LDLIBS     += -L$(CUDA_HOME)/lib64 -lcudart -lstdc++
endif
# model.c refers to the CUDA backend weakly, so that programs without CUDA
# link without it; a program with it names its entry points to the linker,
# which then takes backend_cuda.o out of the library: palaver with CUDA=1,
# and test_cuda_conformance (on the GPU with CUDA=1, else emulated).
CUDA_BACKEND_LINK := -Wl,-u,backend_cuda_create -Wl,-u,backend_cuda_devices
ifeq ($(CUDA),1)
PALAVER_LINK   := $(CUDA_BACKEND_LINK)
CONF_CUDA_LIBS :=
else
PALAVER_LINK   :=
CONF_CUDA_LIBS  = $(EMU_LIB)
endif

TEST_SRCS := $(wildcard tests/test_*.c)
# test_conformance twice: on the CPU, and on the CUDA backend under the emulation
TEST_BINS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%) $(BUILD)/tests/test_cuda_conformance

AVX2_FLAGS   := -mavx2 -mfma -mf16c -mbmi2
AVX512_FLAGS := $(AVX2_FLAGS) -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx512bf16
# the 256-bit AVX-512 level needs VL and VNNI only (Ice Lake has no BF16)
AVX512VL_FLAGS := $(AVX2_FLAGS) -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni

.PHONY: all run test test-unit test-integration testdata bench lint asan install uninstall \
	clean deps fuzz fuzz-all fuzz-jinja help
.DEFAULT_GOAL := all

all: palaver

palaver: $(BUILD)/palaver
	@ln -sf $(BUILD)/palaver palaver

$(BUILD)/palaver: $(MAIN_OBJ) $(BUILD)/libpalaver.a
	$(CC) $(CFLAGS) $(LDFLAGS) $(PALAVER_LINK) -o $@ $^ $(LDLIBS)

# the version string is compiled into main.o
$(MAIN_OBJ): Makefile

$(BUILD)/libpalaver.a: $(LIB_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/%.o: %.c | $(API_DIR)/engine.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(call layer_inc,$<) $(CFLAGS) -c -o $@ $<

$(BUILD)/%_avx2.o: %_avx2.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(call layer_inc,$<) $(CFLAGS) $(AVX2_FLAGS) -c -o $@ $<

# 256-bit AVX-512 (VL, VNNI): the compiler must not widen anything to zmm
$(BUILD)/%_avx512vl.o: %_avx512vl.c %_avx2.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(call layer_inc,$<) $(CFLAGS) $(AVX512VL_FLAGS) -mprefer-vector-width=256 \
		-c -o $@ $<

$(BUILD)/%_avx512.o: %_avx512.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(call layer_inc,$<) $(CFLAGS) $(AVX512_FLAGS) -c -o $@ $<

$(API_DIR)/engine.h:
	@mkdir -p $(dir $@)
	ln -sf $(CURDIR)/engine/engine.h $@

# gpu/ may include engine/quant.h and nothing else of the project: it sees
# it through a link of its own.
GPU_API_DIR := $(BUILD)/api-gpu
INC_gpu     := -Igpu/cuda -I$(GPU_API_DIR)

$(GPU_API_DIR)/quant.h:
	@mkdir -p $(dir $@)
	ln -sf $(CURDIR)/engine/quant.h $@

$(BUILD)/gpu/cuda/%.o: gpu/cuda/%.cu | $(GPU_API_DIR)/quant.h
	@mkdir -p $(dir $@)
	$(NVCC) -O3 -std=c++17 $(CUDA_ARCHS) $(INC_gpu) -Werror all-warnings \
		-Xcompiler -Wall,-Wextra,-Werror -MMD -MP -c -o $@ $<

$(BUILD)/tests/%: tests/%.c $(BUILD)/libpalaver.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(INC_tests) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libpalaver.a $(CMOCKA_LIBS) $(LDLIBS)

# ---- CUDA kernels under emulation (issue 21) --------------------------------
# The same gpu/cuda/*.cu, compiled by the host C++ compiler against
# gpu/cuda/emu/ into libpalaver_cuda_emu.a, which the tests test_cuda_*
# link before the library: `make test` runs every kernel without a GPU.
EMU_SRCS := $(wildcard gpu/cuda/*.cu) gpu/cuda/emu/emu.cpp
EMU_OBJS := $(patsubst %,$(BUILD)/emu/%.o,$(basename $(EMU_SRCS)))
EMU_LIB  := $(BUILD)/libpalaver_cuda_emu.a
EMU_CXXFLAGS := -std=c++17 $(OPT) -g $(WARN) -MMD -MP $(INC_gpu) \
	$(filter -fsanitize% -fno-omit-frame-pointer -fno-sanitize-recover%,$(CFLAGS))
# test-only kernels (deliberately broken ones among them) for test_cuda_emu
EMU_TEST_OBJS := $(BUILD)/emu/tests/cuda_emu_kernels.o

$(BUILD)/emu/%.o: %.cu | $(GPU_API_DIR)/quant.h
	@mkdir -p $(dir $@)
	$(CXX) -x c++ $(EMU_CXXFLAGS) -c -o $@ $<

$(BUILD)/emu/%.o: %.cpp | $(GPU_API_DIR)/quant.h
	@mkdir -p $(dir $@)
	$(CXX) $(EMU_CXXFLAGS) -c -o $@ $<

$(EMU_TEST_OBJS): tests/cuda_emu_kernels.cu

$(EMU_LIB): $(EMU_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/tests/test_cuda_%: tests/test_cuda_%.c $(EMU_LIB) $(EMU_TEST_OBJS) $(BUILD)/libpalaver.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(INC_tests) -Igpu/cuda $(CFLAGS) $(LDFLAGS) -o $@ $< $(EMU_TEST_OBJS) \
		$(EMU_LIB) $(BUILD)/libpalaver.a $(CMOCKA_LIBS) $(LDLIBS) -lstdc++

# Every conformance case through the CUDA backend: the kernels emulated, or
# on the GPU in a CUDA=1 build.
$(BUILD)/tests/test_cuda_conformance: tests/test_conformance.c $(CONF_CUDA_LIBS) $(BUILD)/libpalaver.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -DCONFORMANCE_CUDA=1 $(INC_tests) -Igpu/cuda $(CFLAGS) $(LDFLAGS) \
		$(CUDA_BACKEND_LINK) -o $@ $< $(BUILD)/libpalaver.a $(CONF_CUDA_LIBS) \
		$(CMOCKA_LIBS) $(LDLIBS) -lstdc++

ifeq ($(CUDA),1)
# The kernel tests against the real backend, for a machine with a GPU
# (built by `make CUDA=1`, not run by `make test`).
all: $(BUILD)/tests/gpu_test_cuda_ops
$(BUILD)/tests/gpu_test_cuda_ops: tests/test_cuda_ops.c $(BUILD)/libpalaver.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -DPALAVER_CUDA_DEVICE=1 $(INC_tests) -Igpu/cuda $(CFLAGS) $(LDFLAGS) \
		-o $@ $< $(BUILD)/libpalaver.a $(CMOCKA_LIBS) $(LDLIBS)
endif

# ---- set-up --------------------------------------------------------------
deps:
	@sh tools/deps.sh $(PKGS) cmocka python3-jinja2

run: deps all
	./palaver $(ARGS)

# ---- tests ---------------------------------------------------------------
test: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory test-unit
	@$(MAKE) --no-print-directory test-integration

# tools/bench_quant.c is built with the tests so that it keeps compiling.
test-unit: $(TEST_BINS) $(BUILD)/bench_quant testdata
	@sh tests/run-unit.sh $(TEST_BINS)

test-integration: $(BUILD)/palaver testdata
	@PALAVER=$(CURDIR)/$(BUILD)/palaver sh tests/run-integration.sh

# The reference data a clone has: tests/data (the layout of ../shared/ref,
# large files as NAME.xz) unpacked into build/testdata, one folder whatever
# BUILD is.  The tests read $PALAVER_REF_DIR, else ../shared/ref, else this
# (tests/testutil.h, tests/refdata.sh); tests/data/README.md says what is there.
TESTDATA     := build/testdata
TESTDATA_SRC := $(shell find tests/data -type f 2>/dev/null)
$(TESTDATA)/.stamp: $(TESTDATA_SRC) tools/testdata.sh
	@sh tools/testdata.sh tests/data $(TESTDATA)

testdata: $(TESTDATA)/.stamp

asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan SAN=1 OPT=-O1 test-unit

bench: all
	./palaver bench $(ARGS)

lint:
	@command -v cppcheck >/dev/null && command -v clang-format >/dev/null || \
		{ echo "lint: needs cppcheck and clang-format: apt-get install cppcheck clang-format" >&2; exit 1; }
	cppcheck --quiet --error-exitcode=1 --std=c11 --enable=warning,portability \
		--suppress=missingIncludeSystem --inline-suppr -D_GNU_SOURCE \
		-Ilib -Iapp -Iengine -Iui -Ihistory lib app engine ui history
	clang-format --dry-run --Werror $(SRCS) $(HDRS)
	clang-format --dry-run --Werror $(wildcard gpu/cuda/*.cu gpu/cuda/*.cuh gpu/cuda/*.h \
		gpu/cuda/emu/*.h gpu/cuda/emu/*.cpp)

# ---- fuzzing: libFuzzer on every untrusted input format ---------------------
# `make fuzz` builds build-fuzz/fuzz_gguf, seeds build-fuzz/corpus with the
# reference models and runs for FUZZ_TIME seconds (inputs up to FUZZ_MAXLEN
# bytes); crashes land in build-fuzz/ (keep small ones in tests/fuzz/regress/).
# `make fuzz-all` (nightly) runs every target for FUZZ_ALL_TIME seconds
# each (default 600): the GGUF reader, session import JSON, config YAML
# through palaver's loader, and the tokenizer with every vocabulary family;
# seeds are in tests/fuzz/<target>/, findings land in build-fuzz/<target>/.
FUZZ_CC   ?= clang
FUZZ_TIME ?= 60
FUZZ_ALL_TIME ?= 600
FUZZ_MAXLEN ?= 1200000
FUZZ_FLAGS := -std=c11 -g -O1 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined $(PKG_CFLAGS)
FUZZ_LIB  := $(wildcard lib/*.c)
FUZZ_SRCS := tests/fuzz/fuzz_gguf.c engine/gguf.c $(FUZZ_LIB)
FUZZ_TARGETS := gguf import config tokenizer
FUZZ_DEPS_import    := history/store.c
FUZZ_DEPS_config    := app/config.c ui/theme.c
FUZZ_DEPS_tokenizer := engine/tokenizer.c engine/unicode.c engine/gguf.c
FUZZ_INC_import     := -Ilib -Ihistory
FUZZ_INC_config     := -Ilib -Iapp -Iui -Iengine
FUZZ_INC_tokenizer  := -Ilib -Iengine

build-fuzz/fuzz_gguf: $(FUZZ_SRCS) engine/gguf.h
	@mkdir -p build-fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) -Ilib -Iengine -o $@ $(FUZZ_SRCS)

.SECONDEXPANSION:
build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c $$(FUZZ_DEPS_$$*) $(FUZZ_LIB) $(HDRS)
	@mkdir -p build-fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) $(FUZZ_INC_$*) -o $@ $< $(FUZZ_DEPS_$*) $(FUZZ_LIB) $(PKG_LIBS) -lm -pthread

fuzz: build-fuzz/fuzz_gguf
	@mkdir -p build-fuzz/corpus tests/fuzz/regress
	@cp -n ../shared/ref/models/*.gguf ../shared/ref/vocab/*.gguf build-fuzz/corpus/ 2>/dev/null || true
	cd build-fuzz && ./fuzz_gguf -max_total_time=$(FUZZ_TIME) -max_len=$(FUZZ_MAXLEN) \
		-timeout=10 -rss_limit_mb=2048 -print_final_stats=1 corpus ../tests/fuzz/regress

fuzz-all: $(FUZZ_TARGETS:%=build-fuzz/fuzz_%) testdata
	@sh tests/fuzz/run-all.sh $(FUZZ_ALL_TIME) $(FUZZ_TARGETS)

# ---- fuzzing (issue 20): libFuzzer on the Jinja interpreter ------------------
# `make fuzz-jinja` builds build-fuzz/fuzz_jinja, seeds build-fuzz/corpus-jinja
# with every test template over a few conversations (template, NUL, JSON)
# and runs for FUZZ_TIME seconds; crashes land in build-fuzz/.
FUZZ_JINJA_SRCS := tests/fuzz/fuzz_jinja.c engine/jinja.c engine/jinja_value.c \
	engine/jinja_eval.c engine/unicode.c $(wildcard lib/*.c)
JINJA_SEED_CONVS := 03-turns 06-awkward-text 10-tools

build-fuzz/fuzz_jinja: $(FUZZ_JINJA_SRCS) engine/jinja.h engine/jinja_int.h engine/jinja_case.h
	@mkdir -p build-fuzz
	$(FUZZ_CC) -std=c11 -g -O1 -D_GNU_SOURCE -Ilib -Iengine \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
		-o $@ $(FUZZ_JINJA_SRCS)

fuzz-jinja: build-fuzz/fuzz_jinja
	@mkdir -p build-fuzz/corpus-jinja
	@for t in tests/jinja/templates/*.jinja ../shared/ref/templates/*.jinja; do \
		[ -r "$$t" ] || continue; \
		for c in $(JINJA_SEED_CONVS); do \
			{ cat "$$t"; printf '\0001'; cat tests/jinja/conversations/$$c.json; } \
				>"build-fuzz/corpus-jinja/$$(basename "$$t" .jinja).$$c"; \
		done; \
	done
	cd build-fuzz && ./fuzz_jinja -max_total_time=$(FUZZ_TIME) -max_len=65536 \
		-timeout=10 -rss_limit_mb=2048 -print_final_stats=1 corpus-jinja \
		../tests/fuzz/regress-jinja

# ---- tools ---------------------------------------------------------------
# Kernel throughput table (docs/notes/quant.md): build/bench_quant [isa]
$(BUILD)/bench_quant: tools/bench_quant.c $(BUILD)/libpalaver.a
	$(CC) $(CPPFLAGS) -Ilib -Iengine $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libpalaver.a $(LDLIBS)

# ---- palaver-tiny (issue 11): retrain models/palaver-tiny.gguf from scratch ----
$(BUILD)/tiny_gguf: tools/train/tiny_gguf.c $(BUILD)/libpalaver.a
	$(CC) $(CPPFLAGS) -Ilib -Iengine $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libpalaver.a $(LDLIBS)

.PHONY: tiny-model
tiny-model: all $(BUILD)/tiny_gguf
	@sh tools/train/make_tiny.sh $(BUILD)

# ---- install -------------------------------------------------------------
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
		$(DESTDIR)$(PREFIX)/share/palaver
	install -m 755 $(BUILD)/palaver $(DESTDIR)$(PREFIX)/bin/palaver
	install -m 644 man/palaver.1 $(DESTDIR)$(PREFIX)/share/man/man1/palaver.1
	install -m 644 config.yaml $(DESTDIR)$(PREFIX)/share/palaver/config.yaml
	install -m 644 models/palaver-tiny.gguf models/LICENSE.WordNet $(DESTDIR)$(PREFIX)/share/palaver/

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/palaver $(DESTDIR)$(PREFIX)/share/man/man1/palaver.1 \
		$(DESTDIR)$(PREFIX)/share/palaver/config.yaml \
		$(DESTDIR)$(PREFIX)/share/palaver/palaver-tiny.gguf \
		$(DESTDIR)$(PREFIX)/share/palaver/LICENSE.WordNet
	-rmdir $(DESTDIR)$(PREFIX)/share/palaver 2>/dev/null

clean:
	rm -rf build build-asan build-cuda build-fuzz palaver

help:
	@echo "targets: all run test asan bench lint install uninstall clean deps fuzz fuzz-all fuzz-jinja testdata tiny-model"
	@echo "variables: PREFIX DESTDIR ARCH_FLAGS OPT CUDA=1 ARGS='...' (for run/bench)"

-include $(OBJS:.o=.d) $(TEST_BINS:=.d) $(EMU_OBJS:.o=.d) $(EMU_TEST_OBJS:.o=.d) $(CU_OBJS:.o=.d)
