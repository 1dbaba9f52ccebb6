/* The list of elementwise Keras activations, in id order (see activations.h).
 *
 * A bare macro with no C++ in it, so that the per-ISA kernel declarations
 * (csrc/ukernels/vmath/vmath.h, seen by files compiled with ISA flags) can be generated from the
 * same list as the enum, the names and the dispatch table. Append only: ids are stable.
 */
#pragma once

/* X(name) once per activation, in id order. */
#define FL_ACTIVATION_LIST(X) \
    X(linear)                 \
    X(relu)                   \
    X(relu6)                  \
    X(leaky_relu)             \
    X(sigmoid)                \
    X(tanh)                   \
    X(gelu)                   \
    X(gelu_tanh)              \
    X(silu)                   \
    X(elu)                    \
    X(selu)                   \
    X(softplus)               \
    X(softsign)               \
    X(hard_sigmoid)           \
    X(hard_silu)              \
    X(mish)                   \
    X(exponential)            \
    X(celu)                   \
    X(log_sigmoid)            \
    X(tanh_shrink)            \
    X(hard_tanh)              \
    X(soft_shrink)            \
    X(hard_shrink)            \
    X(sparse_plus)            \
    X(squareplus)             \
    X(sparse_sigmoid)
