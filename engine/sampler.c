/* The sampler chain: penalties, top-k, typical-p, top-p, min-p, temperature, seeded draw. */
#include "sampler.h"

#include "report.h"
#include "xalloc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/*
 * DESIGN
 * Candidates are (id, logit, p) triples.  Stages shrink or rescale the list;
 * `sorted` records whether it is in descending logit order so that top-p
 * and the draw sort at most once.  top-k uses a quickselect so that a
 * 150k-token vocabulary is not sorted in full for every token.  Greedy
 * sampling never builds the list: it is an argmax with the penalties applied
 * on the fly.  The history for the penalties is a ring of the last
 * repeat_last_n tokens plus a per-token count, updated in sampler_accept().
 */

struct sampler {
	struct sampler_params p;
	int n_vocab;
	struct sampler_rng rng;
	struct sampler_cand *cands; /* (n_vocab) scratch */
	int32_t *ring;              /* (ring_cap) last tokens, oldest at ring_head when full */
	int ring_cap;
	int ring_n;
	int ring_head;
	int32_t *counts; /* (n_vocab) occurrences in the ring */
};

static const char *const stage_names[SAMPLER_N_STAGES] = {
	"penalties", "top_k", "typical_p", "top_p", "min_p", "temperature",
};

const char *sampler_stage_name(enum sampler_stage s)
{
	return (unsigned)s < SAMPLER_N_STAGES ? stage_names[s] : "?";
}

void sampler_params_default(struct sampler_params *p)
{
	memset(p, 0, sizeof(*p));
	p->temperature = 0.8f;
	p->top_k = 40;
	p->top_p = 0.95f;
	p->min_p = 0.05f;
	p->typical_p = 1.0f;
	p->repeat_penalty = 1.0f;
	p->repeat_last_n = 64;
	p->seed = 0;
	p->min_keep = 1;
	p->n_order = SAMPLER_N_STAGES;
	for (int i = 0; i < SAMPLER_N_STAGES; i++)
		p->order[i] = (enum sampler_stage)i;
}

static int stage_from_name(const char *s, size_t len)
{
	static const struct {
		const char *name;
		enum sampler_stage st;
	} names[] = {
		{ "penalties", SAMPLER_PENALTIES },
		{ "top_k", SAMPLER_TOP_K },
		{ "typical_p", SAMPLER_TYPICAL_P },
		{ "typical", SAMPLER_TYPICAL_P },
		{ "top_p", SAMPLER_TOP_P },
		{ "min_p", SAMPLER_MIN_P },
		{ "temperature", SAMPLER_TEMPERATURE },
		{ "temp", SAMPLER_TEMPERATURE },
		{ "k", SAMPLER_TOP_K },
		{ "y", SAMPLER_TYPICAL_P },
		{ "p", SAMPLER_TOP_P },
		{ "m", SAMPLER_MIN_P },
		{ "t", SAMPLER_TEMPERATURE },
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i].name) == len && !strncmp(names[i].name, s, len))
			return names[i].st;
	return -1;
}

int sampler_order_parse(const char *s, struct sampler_params *p)
{
	enum sampler_stage order[SAMPLER_N_STAGES];
	int n = 0, seen[SAMPLER_N_STAGES] = { 0 };
	int letters = !strchr(s, ',') && strlen(s) > 1 && stage_from_name(s, strlen(s)) < 0;
	const char *q = s;
	while (*q) {
		size_t len = letters ? 1 : strcspn(q, ",");
		int st = stage_from_name(q, len);
		if (st < 0)
			return error("unknown sampler stage '%.*s' in '%s'", (int)len, q, s);
		if (seen[st])
			return error("sampler stage '%s' given twice in '%s'", stage_names[st], s);
		seen[st] = 1;
		order[n++] = (enum sampler_stage)st;
		q += len;
		if (!letters && *q == ',')
			q++;
	}
	if (n == 0)
		return error("empty sampler order");
	memcpy(p->order, order, sizeof(order[0]) * (size_t)n);
	p->n_order = n;
	return 0;
}

/* ---- RNG -------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void sampler_rng_seed(struct sampler_rng *r, uint64_t seed)
{
	uint64_t x = seed;
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t sampler_rng_next(struct sampler_rng *r)
{
	uint64_t *s = r->s;
	uint64_t res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return res;
}

double sampler_rng_uniform(struct sampler_rng *r)
{
	return (double)(sampler_rng_next(r) >> 11) * 0x1.0p-53;
}

/* ---- stages ----------------------------------------------------------------- */

static int cmp_desc(const void *a, const void *b)
{
	const struct sampler_cand *x = a, *y = b;
	if (x->logit != y->logit)
		return x->logit > y->logit ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id; /* ties: lower id first, deterministic */
}

static void sort_desc(struct sampler_cands *c)
{
	if (!c->sorted) {
		qsort(c->data, c->n, sizeof(*c->data), cmp_desc);
		c->sorted = 1;
	}
}

void sampler_softmax(struct sampler_cands *c)
{
	sort_desc(c);
	if (!c->n)
		return;
	float max = c->data[0].logit;
	double sum = 0;
	for (size_t i = 0; i < c->n; i++) {
		float e = expf(c->data[i].logit - max);
		c->data[i].p = e;
		sum += e;
	}
	for (size_t i = 0; i < c->n; i++)
		c->data[i].p = (float)(c->data[i].p / sum);
}

static float penalize(float logit, int count, float repeat, float presence, float frequency)
{
	if (count <= 0)
		return logit;
	if (repeat != 1.0f)
		logit = logit <= 0 ? logit * repeat : logit / repeat;
	return logit - (float)count * frequency - presence;
}

static int cmp_i32(const void *a, const void *b)
{
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
	return (x > y) - (x < y);
}

void sampler_apply_penalties(struct sampler_cands *c, const int32_t *hist, int n_hist, float repeat,
			     float presence, float frequency)
{
	if (n_hist <= 0 || (repeat == 1.0f && presence == 0.0f && frequency == 0.0f))
		return;
	int32_t *h = xmalloc((size_t)n_hist * sizeof(*h));
	memcpy(h, hist, (size_t)n_hist * sizeof(*h));
	qsort(h, (size_t)n_hist, sizeof(*h), cmp_i32);
	for (size_t i = 0; i < c->n; i++) {
		int32_t id = c->data[i].id;
		/* binary search the first occurrence, then count the run */
		int lo = 0, hi = n_hist;
		while (lo < hi) {
			int mid = (lo + hi) / 2;
			if (h[mid] < id)
				lo = mid + 1;
			else
				hi = mid;
		}
		int cnt = 0;
		while (lo + cnt < n_hist && h[lo + cnt] == id)
			cnt++;
		c->data[i].logit = penalize(c->data[i].logit, cnt, repeat, presence, frequency);
	}
	free(h);
	c->sorted = 0;
}

/* Sift down in a heap whose root is the worst kept candidate. */
static void heap_down(struct sampler_cand *h, size_t n, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, w = i;
		if (l < n && cmp_desc(&h[l], &h[w]) > 0)
			w = l;
		if (r < n && cmp_desc(&h[r], &h[w]) > 0)
			w = r;
		if (w == i)
			return;
		struct sampler_cand t = h[i];
		h[i] = h[w];
		h[w] = t;
		i = w;
	}
}

/* Keep the k best (a heap over the first k slots: O(n log k)), then sort them. */
static void select_top(struct sampler_cands *c, size_t k)
{
	struct sampler_cand *a = c->data;
	for (size_t i = k / 2; i-- > 0;)
		heap_down(a, k, i);
	for (size_t i = k; i < c->n; i++) {
		if (cmp_desc(&a[i], &a[0]) < 0) {
			a[0] = a[i];
			heap_down(a, k, 0);
		}
	}
	c->n = k;
	c->sorted = 0;
	sort_desc(c);
}

void sampler_apply_top_k(struct sampler_cands *c, int k, int min_keep)
{
	if (k <= 0)
		return;
	if (k < min_keep)
		k = min_keep;
	if ((size_t)k >= c->n)
		return;
	if (c->sorted)
		c->n = (size_t)k;
	else
		select_top(c, (size_t)k);
}

void sampler_apply_top_p(struct sampler_cands *c, float p, int min_keep)
{
	if (p >= 1.0f || c->n == 0)
		return;
	sampler_softmax(c);
	double cum = 0;
	size_t last = c->n;
	for (size_t i = 0; i < c->n; i++) {
		cum += c->data[i].p;
		if (cum >= p && i + 1 >= (size_t)min_keep) {
			last = i + 1;
			break;
		}
	}
	c->n = last;
}

void sampler_apply_min_p(struct sampler_cands *c, float p, int min_keep)
{
	if (p <= 0.0f || c->n == 0)
		return;
	float max = -INFINITY;
	for (size_t i = 0; i < c->n; i++)
		if (c->data[i].logit > max)
			max = c->data[i].logit;
	float thr = max + logf(p);
	size_t kept = 0;
	for (size_t i = 0; i < c->n; i++)
		if (c->data[i].logit >= thr)
			kept++;
	if (kept < (size_t)min_keep) {
		sampler_apply_top_k(c, min_keep, min_keep);
		return;
	}
	size_t o = 0;
	for (size_t i = 0; i < c->n; i++)
		if (c->data[i].logit >= thr)
			c->data[o++] = c->data[i]; /* stable: keeps a sorted list sorted */
	c->n = o;
}

struct typical_item {
	float score; /* |-log p - entropy| */
	size_t idx;
};

static int cmp_typical(const void *a, const void *b)
{
	const struct typical_item *x = a, *y = b;
	if (x->score != y->score)
		return x->score < y->score ? -1 : 1;
	return (x->idx > y->idx) - (x->idx < y->idx);
}

void sampler_apply_typical(struct sampler_cands *c, float p, int min_keep)
{
	if (p >= 1.0f || c->n == 0)
		return;
	sampler_softmax(c);
	double ent = 0;
	for (size_t i = 0; i < c->n; i++)
		if (c->data[i].p > 0)
			ent -= c->data[i].p * log(c->data[i].p);
	struct typical_item *it = xmalloc(c->n * sizeof(*it));
	for (size_t i = 0; i < c->n; i++) {
		double lp = c->data[i].p > 0 ? -log(c->data[i].p) : INFINITY;
		it[i].score = (float)fabs(lp - ent);
		it[i].idx = i;
	}
	qsort(it, c->n, sizeof(*it), cmp_typical);
	double cum = 0;
	size_t last = c->n;
	for (size_t i = 0; i < c->n; i++) {
		cum += c->data[it[i].idx].p;
		if (cum > p && i + 1 >= (size_t)min_keep) {
			last = i + 1;
			break;
		}
	}
	struct sampler_cand *keep = xmalloc(last * sizeof(*keep));
	for (size_t i = 0; i < last; i++)
		keep[i] = c->data[it[i].idx];
	memcpy(c->data, keep, last * sizeof(*keep));
	c->n = last;
	c->sorted = 0;
	free(keep);
	free(it);
}

void sampler_apply_temperature(struct sampler_cands *c, float t)
{
	if (t <= 0.0f) {
		/* llama.cpp's temp_ext: keep only the best */
		sampler_apply_top_k(c, 1, 1);
		return;
	}
	if (t == 1.0f)
		return;
	for (size_t i = 0; i < c->n; i++)
		c->data[i].logit /= t;
}

int32_t sampler_draw(struct sampler_cands *c, double u)
{
	if (c->n == 0)
		return -1;
	sampler_softmax(c);
	double target = u, cum = 0;
	for (size_t i = 0; i < c->n; i++) {
		cum += c->data[i].p;
		if (target < cum)
			return c->data[i].id;
	}
	return c->data[c->n - 1].id; /* rounding left cum just under 1 */
}

/* ---- the chain -------------------------------------------------------------- */

struct sampler *sampler_new(const struct sampler_params *p, int n_vocab)
{
	if (n_vocab <= 0)
		return error("invalid vocabulary size %d", n_vocab), NULL;
	struct sampler *s = xcalloc(1, sizeof(*s));
	s->p = *p;
	if (s->p.min_keep < 1)
		s->p.min_keep = 1;
	if (s->p.n_order < 0 || s->p.n_order > SAMPLER_N_STAGES)
		s->p.n_order = 0;
	s->n_vocab = n_vocab;
	s->ring_cap = p->repeat_last_n < 0 ? 4096 : p->repeat_last_n;
	s->cands = try_alloc_array((size_t)n_vocab, sizeof(*s->cands));
	s->counts = try_alloc_array((size_t)n_vocab, sizeof(*s->counts));
	s->ring = s->ring_cap ? try_alloc_array((size_t)s->ring_cap, sizeof(*s->ring)) : NULL;
	if (!s->cands || !s->counts || (s->ring_cap && !s->ring)) {
		sampler_free(s);
		error("cannot allocate a sampler for %d tokens", n_vocab);
		return NULL;
	}
	sampler_reset(s);
	return s;
}

void sampler_free(struct sampler *s)
{
	if (!s)
		return;
	free(s->cands);
	free(s->counts);
	free(s->ring);
	free(s);
}

void sampler_reset(struct sampler *s)
{
	sampler_rng_seed(&s->rng, s->p.seed);
	memset(s->counts, 0, (size_t)s->n_vocab * sizeof(*s->counts));
	s->ring_n = 0;
	s->ring_head = 0;
}

void sampler_accept(struct sampler *s, int32_t token)
{
	if (token < 0 || token >= s->n_vocab || s->ring_cap == 0)
		return;
	if (s->ring_n == s->ring_cap) {
		s->counts[s->ring[s->ring_head]]--;
		s->ring[s->ring_head] = token;
		s->ring_head = (s->ring_head + 1) % s->ring_cap;
	} else {
		s->ring[(s->ring_head + s->ring_n) % s->ring_cap] = token;
		s->ring_n++;
	}
	s->counts[token]++;
}

static int has_stage(const struct sampler *s, enum sampler_stage st)
{
	for (int i = 0; i < s->p.n_order; i++)
		if (s->p.order[i] == st)
			return 1;
	return 0;
}

int32_t sampler_sample(struct sampler *s, const float *logits)
{
	const struct sampler_params *p = &s->p;
	int pen = has_stage(s, SAMPLER_PENALTIES) && s->ring_n > 0 &&
		  (p->repeat_penalty != 1.0f || p->presence_penalty != 0.0f ||
		   p->frequency_penalty != 0.0f);

	if (p->temperature <= 0.0f) {
		int32_t best = 0;
		float bl = -INFINITY;
		for (int i = 0; i < s->n_vocab; i++) {
			float l = logits[i];
			if (pen)
				l = penalize(l, s->counts[i], p->repeat_penalty,
					     p->presence_penalty, p->frequency_penalty);
			if (l > bl) {
				bl = l;
				best = i;
			}
		}
		return best;
	}

	struct sampler_cands c = { s->cands, (size_t)s->n_vocab, 0 };
	for (int i = 0; i < s->n_vocab; i++) {
		c.data[i].id = i;
		c.data[i].logit = logits[i];
		c.data[i].p = 0;
	}
	for (int i = 0; i < p->n_order; i++) {
		switch (p->order[i]) {
		case SAMPLER_PENALTIES:
			if (pen) /* the full list is in id order here or after other stages: use counts */
				for (size_t j = 0; j < c.n; j++)
					c.data[j].logit =
						penalize(c.data[j].logit, s->counts[c.data[j].id],
							 p->repeat_penalty, p->presence_penalty,
							 p->frequency_penalty);
			c.sorted = 0;
			break;
		case SAMPLER_TOP_K: sampler_apply_top_k(&c, p->top_k, p->min_keep); break;
		case SAMPLER_TYPICAL_P: sampler_apply_typical(&c, p->typical_p, p->min_keep); break;
		case SAMPLER_TOP_P: sampler_apply_top_p(&c, p->top_p, p->min_keep); break;
		case SAMPLER_MIN_P: sampler_apply_min_p(&c, p->min_p, p->min_keep); break;
		case SAMPLER_TEMPERATURE: sampler_apply_temperature(&c, p->temperature); break;
		case SAMPLER_N_STAGES: break;
		}
	}
	return sampler_draw(&c, sampler_rng_uniform(&s->rng));
}
