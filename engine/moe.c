/* Mixture of experts: routing each token to its experts, and grouping a chunk's tokens by expert. */
#include "moe.h"

#include "report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/*
 * DESIGN
 * Routing is llama.cpp's softmax gating: probabilities over all experts,
 * the top k by probability, their probabilities as weights, renormalized
 * by the families that renormalize.  The selection is a partial selection
 * sort: k is at most a few (2 for Mixtral, 8 for Qwen3-MoE) and the
 * experts at most a few hundred, so k passes over the probabilities cost
 * less than a heap or a sort and keep the tie rule obvious.
 *
 * Grouping is a counting sort by expert, stable in the token order, so
 * that the pairs of an expert form one run of rows: the forward pass
 * gathers those tokens' activations into consecutive rows and runs one
 * gemm per expert over them (each expert's weights read once per chunk),
 * and writes each pair's output back to the row of its token.
 */

void moe_route(const float *logits, int n_expert, int k, int renorm, int32_t *ids, float *weights)
{
	float mx = logits[0];
	for (int e = 1; e < n_expert; e++)
		mx = logits[e] > mx ? logits[e] : mx;
	/* the softmax's denominator; the chosen experts need only exp(l - max) */
	double sum = 0;
	for (int e = 0; e < n_expert; e++)
		sum += expf(logits[e] - mx);
	double chosen = 0;
	for (int s = 0; s < k; s++) {
		int best = -1;
		for (int e = 0; e < n_expert; e++) {
			int taken = 0;
			for (int j = 0; j < s && !taken; j++)
				taken = ids[j] == e;
			if (!taken && (best < 0 || logits[e] > logits[best]))
				best = e;
		}
		ids[s] = best;
		weights[s] = expf(logits[best] - mx);
		chosen += weights[s];
	}
	double div = renorm ? chosen : sum;
	for (int s = 0; s < k; s++)
		weights[s] = (float)(weights[s] / div);
}

struct moe_groups *moe_groups_new(int n_expert, int max_pairs)
{
	struct moe_groups *g = calloc(1, sizeof(*g));
	if (!g || n_expert <= 0 || max_pairs <= 0)
		goto oom;
	g->n_expert = n_expert;
	g->max_pairs = max_pairs;
	g->start = calloc((size_t)n_expert + 1, sizeof(*g->start));
	g->pair = calloc((size_t)max_pairs, sizeof(*g->pair));
	g->row = calloc((size_t)max_pairs, sizeof(*g->row));
	g->active = calloc((size_t)n_expert, sizeof(*g->active));
	if (!g->start || !g->pair || !g->row || !g->active)
		goto oom;
	return g;
oom:
	moe_groups_free(g);
	error("out of memory for the expert groups (%d experts, %d pairs)", n_expert, max_pairs);
	return NULL;
}

void moe_groups_free(struct moe_groups *g)
{
	if (!g)
		return;
	free(g->start);
	free(g->pair);
	free(g->row);
	free(g->active);
	free(g);
}

int moe_group(struct moe_groups *g, const int32_t *ids, int ntok, int k)
{
	if (ntok < 0 || k <= 0 || (long)ntok * k > g->max_pairs)
		return error("cannot group %d tokens of %d experts in %d pairs", ntok, k,
			     g->max_pairs);
	int n = ntok * k, ne = g->n_expert;
	memset(g->start, 0, sizeof(*g->start) * ((size_t)ne + 1));
	for (int p = 0; p < n; p++) {
		if (ids[p] < 0 || ids[p] >= ne)
			return error("expert %d is out of range (%d experts)", ids[p], ne);
		g->start[ids[p] + 1]++;
	}
	g->n_active = 0;
	for (int e = 0; e < ne; e++) {
		if (g->start[e + 1])
			g->active[g->n_active++] = e;
		g->start[e + 1] += g->start[e];
	}
	/* start[e + 1] is expert e's end: fill each expert from its end, pairs
	 * in reverse, so that its tokens come out ascending; the ends then
	 * have moved down to the starts, one slot to the right */
	for (int p = n - 1; p >= 0; p--) {
		int r = --g->start[ids[p] + 1];
		g->pair[r] = p;
		g->row[p] = r;
	}
	memmove(g->start, g->start + 1, sizeof(*g->start) * (size_t)ne);
	g->start[ne] = n;
	g->n_pairs = n;
	return 0;
}
