// Elementwise Keras activations: stable ids, names, and the list every table is built from.
//
// The ids are part of the C++/Python interface (fastlayers._core.activation_ids()): append new
// activations at the end of FL_ACTIVATION_LIST, never reorder or remove one. Definitions:
// docs/semantics.md §2 and fastlayers/_numpy/activations.py; kernels: csrc/ukernels/vmath/.
//
// Row activations (softmax, log_softmax, sparsemax, glu) are not elementwise and not listed.
#pragma once

#include <cstdint>

#include "fastlayers/act_list.h"

namespace fl {

// linear = 0, relu = 1, ..., sparse_sigmoid = 25 (the order of FL_ACTIVATION_LIST).
enum class Act : int {
#define FL_ACT_ENUM_ENTRY(name) name,
    FL_ACTIVATION_LIST(FL_ACT_ENUM_ENTRY)
#undef FL_ACT_ENUM_ENTRY
};

#define FL_ACT_COUNT_ONE(name) +1
constexpr int kNumActs = 0 FL_ACTIVATION_LIST(FL_ACT_COUNT_ONE);
#undef FL_ACT_COUNT_ONE

// Elementwise activation, applied in place to y[0, n). nullptr = linear.
using ActFn = void (*)(float* y, int64_t n);

// The in-place kernel of `act` for the active ISA (the one the drivers apply to finished rows
// of their output); nullptr for Act::linear (nothing to apply) and for an id outside
// [0, kNumActs).
ActFn act_kernel(Act act);

// The Keras name of an activation ("linear", "relu", ..., "sparse_sigmoid"); nullptr for an id
// outside [0, kNumActs).
const char* act_name(int id);

// The id of a Keras activation name, or -1 if it is not an elementwise activation we have.
// Aliases: "swish" -> silu, "hard_swish" -> hard_silu. Exact, case-sensitive match (as Keras).
int act_id(const char* name);

// Number of alias names accepted by act_id besides the kNumActs canonical ones, and the i-th
// (name, id) pair, for listing every accepted name (the Python binding's activation_ids()).
constexpr int kNumActAliases = 2;
const char* act_alias_name(int i);
int act_alias_id(int i);

}  // namespace fl
