/* The sampler chain: penalties, truncation stages, temperature, then a seeded draw. */
#ifndef PALAVER_SAMPLER_H
#define PALAVER_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

/*
 * A sampler turns one row of logits into a token.  The stages run in the
 * configured order (llama.cpp's by default: penalties, top-k, typical-p,
 * top-p, min-p, temperature) over a candidate list, then one token is drawn
 * from the softmax of what is left with a xoshiro256** generator seeded from
 * params.seed: the same seed, history and logits give the same token on
 * every run and machine (the draw uses only integer arithmetic on the RNG
 * output and IEEE float math in a fixed order).
 *
 * temperature <= 0 is greedy: penalties apply, then the highest logit wins
 * (ties: the lowest token id).
 *
 * The penalties look at the last repeat_last_n tokens given to
 * sampler_accept() (the prompt and the generated tokens, as the caller
 * decides): repeat (llama.cpp's: positive logits divided, negative
 * multiplied), presence (subtract once if seen) and frequency (subtract
 * per occurrence).
 */

enum sampler_stage {
	SAMPLER_PENALTIES,
	SAMPLER_TOP_K,
	SAMPLER_TYPICAL_P,
	SAMPLER_TOP_P,
	SAMPLER_MIN_P,
	SAMPLER_TEMPERATURE,
	SAMPLER_N_STAGES
};

struct sampler_params {
	float temperature;       /* <= 0: greedy */
	int top_k;               /* <= 0: off */
	float top_p;             /* >= 1: off */
	float min_p;             /* <= 0: off */
	float typical_p;         /* >= 1: off */
	float repeat_penalty;    /* 1: off */
	int repeat_last_n;       /* history length for the penalties; 0: off, -1: whole context */
	float presence_penalty;  /* 0: off */
	float frequency_penalty; /* 0: off */
	uint64_t seed;
	int min_keep; /* the truncation stages keep at least this many (>= 1) */
	int n_order;  /* stages in order[], each at most once */
	enum sampler_stage order[SAMPLER_N_STAGES];
};

/* llama.cpp's defaults: temp 0.8, top-k 40, top-p 0.95, min-p 0.05,
 * typical 1, repeat 1 over 64, presence/frequency 0, the default order. */
void sampler_params_default(struct sampler_params *p);

/* "penalties,top_k,typical_p,top_p,min_p,temperature" (any subset, any
 * order; also the short names "k", "y", "p", "m", "t" as llama.cpp's
 * --sampling-seq letters: e.g. "kypmt").  0 or -1 with error(). */
int sampler_order_parse(const char *s, struct sampler_params *p);
const char *sampler_stage_name(enum sampler_stage s);

struct sampler;

/* NULL with error() when n_vocab is out of range or memory runs out. */
struct sampler *sampler_new(const struct sampler_params *p, int n_vocab);
void sampler_free(struct sampler *s);
/* Forget the history and reseed (a new conversation with the same params). */
void sampler_reset(struct sampler *s);
/* Record a token for the penalties (out-of-range ids are ignored). */
void sampler_accept(struct sampler *s, int32_t token);
/* One token from a row of n_vocab logits (not modified). */
int32_t sampler_sample(struct sampler *s, const float *logits);

/* ---- the stages, exposed for unit tests ---------------------------------- */

struct sampler_cand {
	int32_t id;
	float logit;
	float p; /* filled by sampler_softmax */
};

struct sampler_cands {
	struct sampler_cand *data;
	size_t n;
	int sorted; /* 1 when data is in descending logit order */
};

/* Sort descending by logit and fill p with the softmax. */
void sampler_softmax(struct sampler_cands *c);
/* hist: the last n_hist tokens, oldest first. */
void sampler_apply_penalties(struct sampler_cands *c, const int32_t *hist, int n_hist, float repeat,
			     float presence, float frequency);
void sampler_apply_top_k(struct sampler_cands *c, int k, int min_keep);
void sampler_apply_top_p(struct sampler_cands *c, float p, int min_keep);
void sampler_apply_min_p(struct sampler_cands *c, float p, int min_keep);
void sampler_apply_typical(struct sampler_cands *c, float p, int min_keep);
void sampler_apply_temperature(struct sampler_cands *c, float t);
/* Draw from softmax(c) with a uniform u in [0, 1). */
int32_t sampler_draw(struct sampler_cands *c, double u);

/* xoshiro256** seeded with splitmix64(seed); uniform double in [0, 1). */
struct sampler_rng {
	uint64_t s[4];
};
void sampler_rng_seed(struct sampler_rng *r, uint64_t seed);
uint64_t sampler_rng_next(struct sampler_rng *r);
double sampler_rng_uniform(struct sampler_rng *r);

#endif
