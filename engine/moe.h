/* Mixture of experts: routing each token to its experts, and grouping a chunk's tokens by expert. */
#ifndef PALAVER_MOE_H
#define PALAVER_MOE_H

#include <stdint.h>

/*
 * Route one token: softmax over the router's n_expert logits, the k experts
 * of highest probability (a tie goes to the lower index), in descending
 * order into ids, and their weights: the probabilities, divided by their
 * sum when renorm (Mixtral and Qwen3-MoE do; the result is the softmax of
 * the chosen logits).  1 <= k <= n_expert.
 */
void moe_route(const float *logits, int n_expert, int k, int renorm, int32_t *ids, float *weights);

/*
 * A chunk's (token, expert) pairs grouped by expert, so that each expert's
 * weights are read once for all the tokens routed to it.  Pair p = t * k + s
 * is token t's s-th expert; its row is its place in the grouped order:
 * expert e's rows are start[e] .. start[e+1]-1, their tokens ascending.
 *
 * Invariants after moe_group(): start[0] = 0, start is non-decreasing,
 * start[n_expert] = n_pairs = ntok * k; pair and row are inverse
 * permutations of 0 .. n_pairs-1 (pair[row[p]] == p); the pairs of rows
 * start[e] .. start[e+1]-1 are those with expert e, in ascending order;
 * active lists the experts with rows, ascending.
 */
struct moe_groups {
	int n_expert;
	int max_pairs;   /* capacity: ntok * k at most this */
	int n_pairs;     /* ntok * k of the last grouping */
	int *start;      /* (n_expert + 1) */
	int32_t *pair;   /* (max_pairs) grouped row -> pair */
	int32_t *row;    /* (max_pairs) pair -> grouped row */
	int32_t *active; /* (n_expert) experts with at least one row, ascending */
	int n_active;
};

/* Buffers for n_expert experts and up to max_pairs pairs; NULL with error()
 * on out of memory. */
struct moe_groups *moe_groups_new(int n_expert, int max_pairs);
void moe_groups_free(struct moe_groups *g);

/* Group ntok tokens' k experts each (ids: (ntok, k), each in 0 .. n_expert-1).  -1 with error() when ntok * k exceeds the capacity or
 * an id is out of range. */
int moe_group(struct moe_groups *g, const int32_t *ids, int ntok, int k);

/* Rows of expert e (0 when it has none). */
static inline int moe_rows(const struct moe_groups *g, int e)
{
	return g->start[e + 1] - g->start[e];
}

#endif
