// Elementwise activations: the id <-> name table and the threaded driver.
#include "fastlayers/activations.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "../runtime/dispatch.h"
#include "fastlayers/ops.h"
#include "fastlayers/runtime.h"

namespace fl {
namespace {

const char* const kActNames[kNumActs] = {
#define FL_ACT_NAME_ENTRY(name) #name,
    FL_ACTIVATION_LIST(FL_ACT_NAME_ENTRY)
#undef FL_ACT_NAME_ENTRY
};

struct Alias {
    const char* name;
    Act act;
};
const Alias kAliases[kNumActAliases] = {{"swish", Act::silu}, {"hard_swish", Act::hard_silu}};

// A task should carry at least this many elements: the cheapest activations run at well under
// a nanosecond per element, and waking a worker costs a few microseconds.
constexpr int64_t kMinElementsPerTask = 16384;
// Out of place on an ISA without out-of-place kernels (NEON: KernelTable::act_to is null), each
// task copies and transforms this many elements at a time, so the kernel reads what the copy
// just wrote from L1.
constexpr int64_t kCopyBlock = 2048;

struct ActArgs {
    const float* x;
    float* y;
    void (*kernel)(float*, int64_t);  // nullptr: linear (copy only)
    void (*kernel_to)(const float*, float*, int64_t);  // out of place; nullptr: none (NEON)
};

void act_task(void* ctx, int64_t begin, int64_t end) {
    const ActArgs* a = static_cast<const ActArgs*>(ctx);
    if (a->x == a->y) {
        if (a->kernel) a->kernel(a->y + begin, end - begin);
        return;
    }
    if (a->kernel_to) {  // one pass, x to y (a copy then a pass over y was up to 2x slower)
        a->kernel_to(a->x + begin, a->y + begin, end - begin);
        return;
    }
    for (int64_t i = begin; i < end; i += kCopyBlock) {
        const int64_t len = std::min(kCopyBlock, end - i);
        std::memcpy(a->y + i, a->x + i, static_cast<size_t>(len) * sizeof(float));
        if (a->kernel) a->kernel(a->y + i, len);
    }
}

}  // namespace

const char* act_name(int id) { return (id >= 0 && id < kNumActs) ? kActNames[id] : nullptr; }

int act_id(const char* name) {
    if (name == nullptr) return -1;
    for (int i = 0; i < kNumActs; ++i)
        if (std::strcmp(name, kActNames[i]) == 0) return i;
    for (const Alias& a : kAliases)
        if (std::strcmp(name, a.name) == 0) return static_cast<int>(a.act);
    return -1;
}

const char* act_alias_name(int i) {
    return (i >= 0 && i < kNumActAliases) ? kAliases[i].name : nullptr;
}

int act_alias_id(int i) {
    return (i >= 0 && i < kNumActAliases) ? static_cast<int>(kAliases[i].act) : -1;
}

ActFn act_kernel(Act act) {
    const int id = static_cast<int>(act);
    if (act == Act::linear || id < 0 || id >= kNumActs) return nullptr;
    return kernels().act[id];
}

// x (n) -> y (n), elementwise; chunks are independent, so the result does not depend on the
// thread count.
void activate(const float* x, float* y, int64_t n, Act act) {
    const int id = static_cast<int>(act);
    if (n <= 0 || id < 0 || id >= kNumActs) return;
    ActFn kernel = act_kernel(act);
    ActArgs args{x, y, kernel, kernel ? kernels().act_to[id] : nullptr};  // (linear: memcpy)
    if (args.kernel == nullptr && x == y) return;
    parallel_for(n, kMinElementsPerTask, act_task, &args);
}

}  // namespace fl
