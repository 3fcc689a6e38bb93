/* Tokenizer: SentencePiece and byte-level BPE with llama.cpp's pre-tokenizers, special tokens, streaming decoder. */
#include "tokenizer.h"

#include "report.h"
#include "strbuf.h"
#include "unicode.h"
#include "util.h"
#include "xalloc.h"

#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/*
 * DESIGN
 *
 * Every string the tokenizer knows is interned in one symbol table: the
 * vocabulary tokens keep their ids [0, n_vocab), and the gpt2 merge rules
 * add the strings they mention that are not tokens (ids from n_vocab up), so
 * that a merge rule becomes a pair of ids -> (rank, id of the result) in a
 * hash map and merging never builds strings.
 *
 * Encoding (tokenizer_encode):
 *  1. The text is cut at special tokens (a byte trie, longest match, left to
 *     right): control and unknown tokens only with TOKENIZE_PARSE_SPECIAL,
 *     user-defined tokens always.  Each special becomes its id.
 *  2. Each raw fragment between them is encoded by the model:
 *     - SPM: U+2581 for spaces (plus one in front when add_space_prefix and
 *       the fragment starts the text or follows a special token), one symbol
 *       per UTF-8 character, then adjacent pairs that form a token are
 *       merged, highest score first (ties: leftmost), with a binary heap;
 *       symbols that are not tokens fall back to <0xNN> byte tokens.
 *     - BPE: the fragment is decoded to code points (invalid bytes become
 *       U+FFFD, as llama.cpp does), cut into words by the pre-tokenizer's
 *       passes, and each word's bytes are merged by rank (lowest first,
 *       ties: leftmost), again with a heap.
 *  A merge is O(log n), and a pair popped from the heap is checked against
 *  the current lengths of its two symbols, so stale pairs cost nothing more:
 *  the whole encode is O(n log n) even for one 100 kB word.
 *
 * Pre-tokenizers: llama.cpp applies a list of regular expressions in turn;
 * each splits every chunk from the previous step into its matches and the
 * gaps between them.  The expressions run in one of three regimes, and the
 * passes below reproduce each one's character classes exactly:
 *  - "custom": llama.cpp's hand-written matchers for the gpt-2 and llama3
 *    expressions, over Unicode categories (an unassigned code point belongs
 *    to no class, and the unmatched rest of a chunk is cut per character);
 *  - "collapsed": std::regex over a copy of the text where each non-ASCII
 *    code point is replaced by a byte standing for its category (so \p{L}
 *    is A-Za-z plus any non-ASCII letter; non-ASCII white space is \s);
 *  - "wide": std::wregex over code points for expressions without \p{..}
 *    (ranges compare code points; non-ASCII white space is \s and matches
 *    no range).
 */

#define ATTR_NORMAL 0x01
#define ATTR_UNKNOWN 0x02
#define ATTR_CONTROL 0x04
#define ATTR_USER 0x08
#define ATTR_UNUSED 0x10
#define ATTR_BYTE 0x20
#define ATTR_EOG 0x40

/* ---- symbol table ------------------------------------------------------- */

/*
 * Interned byte strings.  Invariants: ids are dense [0, n); hash is a power
 * of two at least twice n, each slot 0 (empty) or id + 1; no two ids have
 * the same bytes.
 */
struct symtab {
	char *buf; /* [buf_len] all strings, back to back */
	size_t buf_len, buf_alloc;
	size_t *off;       /* [n] start of string id in buf */
	uint32_t *len;     /* [n] its length */
	uint64_t *poly;    /* [n] its poly_hash() */
	uint32_t n, alloc; /* strings, capacity of off/len/poly */
	uint64_t *slot;    /* [mask + 1] open addressing: high 32 bits of
			    * poly_mix(poly) << 32 | (id + 1), or 0 when empty */
	uint32_t mask;
};

/*
 * Strings are hashed by a polynomial modulo the prime 2^61 - 1, with a base
 * drawn at random once per process.  Two properties matter: the hash of any
 * piece s[i..j) follows in O(1) from the hashes of s's prefixes (so
 * index_spm_pairs looks up every split of a token in time linear in its
 * length, where hashing each piece anew was quadratic: a 64 KiB token took
 * 11 s), and no file can be made to collide (flooding one probe chain)
 * without knowing the base.
 */
#define POLY_P ((1ull << 61) - 1)
static uint64_t poly_base;
static pthread_once_t poly_once = PTHREAD_ONCE_INIT;

static void poly_init(void)
{
	uint64_t r = 0;
	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
		r = time_now_ns() *
		    0x9e3779b97f4a7c15ull; /* no entropy yet: still unknown to a file */
	poly_base = (r % (POLY_P - 512)) + 256;
}

static uint64_t poly_reduce(uint64_t x)
{
	x = (x & POLY_P) + (x >> 61);
	return x >= POLY_P ? x - POLY_P : x;
}

static uint64_t poly_mul(uint64_t a, uint64_t b)
{
	unsigned __int128 p = (unsigned __int128)a * b;
	return poly_reduce(((uint64_t)p & POLY_P) + (uint64_t)(p >> 61));
}

/* h(s) = sum (s[i] + 1) * base^(n-1-i) mod 2^61 - 1 */
static uint64_t poly_hash(const char *s, size_t n)
{
	uint64_t h = 0;
	for (size_t i = 0; i < n; i++)
		h = poly_reduce(poly_mul(h, poly_base) + (unsigned char)s[i] + 1);
	return h;
}

/* The table's slot index and tag from a polynomial hash (a bijection). */
static uint64_t poly_mix(uint64_t h)
{
	h ^= h >> 31;
	h *= 0xd6e8feb86659fd93ull;
	h ^= h >> 32;
	return h;
}

/* A direct-mapped cache key (the BPE word cache): any good mix will do. */
static uint64_t hash_bytes(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a, then a final mix */
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ull;
	}
	h ^= h >> 32;
	h *= 0xd6e8feb86659fd93ull;
	h ^= h >> 32;
	return h;
}

/*
 * Pieces up to this long are compared byte for byte when their hashes
 * match; longer ones only by length and the full 61-bit hash (a false match
 * has probability below n / 2^61 per lookup with the random base), so that
 * a vocabulary made of every prefix of one long string costs linear time.
 */
#define SYMTAB_VERIFY_MAX 64

/* The id of s[0..n) whose poly_hash() is h, or -1.  verify: compare bytes
 * (always when n <= SYMTAB_VERIFY_MAX). */
static int32_t symtab_find_hashed(const struct symtab *st, const char *s, size_t n, uint64_t h,
				  int verify)
{
	if (!st->slot)
		return -1;
	uint64_t m = poly_mix(h);
	uint32_t tag = (uint32_t)(m >> 32);
	uint32_t i = (uint32_t)m & st->mask;
	if (n <= SYMTAB_VERIFY_MAX)
		verify = 1;
	for (;;) {
		uint64_t v = st->slot[i];
		if (!v)
			return -1;
		uint32_t id = (uint32_t)v - 1;
		if ((uint32_t)(v >> 32) == tag && st->len[id] == n && st->poly[id] == h &&
		    (!verify || !memcmp(st->buf + st->off[id], s, n)))
			return (int32_t)id;
		i = (i + 1) & st->mask;
	}
}

static int32_t symtab_find(const struct symtab *st, const char *s, size_t n)
{
	return symtab_find_hashed(st, s, n, poly_hash(s, n), 1);
}

static void symtab_place(struct symtab *st, uint32_t id)
{
	uint64_t m = poly_mix(st->poly[id]);
	uint32_t i = (uint32_t)m & st->mask;
	while (st->slot[i])
		i = (i + 1) & st->mask;
	st->slot[i] = (m & 0xFFFFFFFF00000000ull) | (id + 1);
}

static int symtab_rehash(struct symtab *st, uint32_t want)
{
	uint32_t size = 64;
	while (size < want * 2u) {
		if (size > (UINT32_MAX >> 2))
			return error("vocabulary too large");
		size <<= 1;
	}
	uint64_t *slot = calloc(size, sizeof(*slot));
	if (!slot)
		return error("out of memory for the vocabulary hash");
	free(st->slot);
	st->slot = slot;
	st->mask = size - 1;
	for (uint32_t id = 0; id < st->n; id++)
		symtab_place(st, id);
	return 0;
}

/* Append a string known to be absent; returns its id or -1 (error()). */
static int32_t symtab_add(struct symtab *st, const char *s, size_t n)
{
	if (st->n >= INT32_MAX - 1 || n > UINT32_MAX)
		return error("vocabulary too large");
	if (st->n == st->alloc) {
		uint32_t na = st->alloc ? st->alloc * 2 : 1024;
		size_t *off = realloc(st->off, (size_t)na * sizeof(*off));
		if (!off)
			return error("out of memory for the vocabulary");
		st->off = off;
		uint32_t *len = realloc(st->len, (size_t)na * sizeof(*len));
		if (!len)
			return error("out of memory for the vocabulary");
		st->len = len;
		uint64_t *poly = realloc(st->poly, (size_t)na * sizeof(*poly));
		if (!poly)
			return error("out of memory for the vocabulary");
		st->poly = poly;
		st->alloc = na;
	}
	if (st->buf_len + n + 1 > st->buf_alloc) {
		size_t na = st->buf_alloc ? st->buf_alloc : 4096;
		while (na < st->buf_len + n + 1) {
			if (na > SIZE_MAX / 2)
				return error("vocabulary too large");
			na *= 2;
		}
		char *buf = realloc(st->buf, na);
		if (!buf)
			return error("out of memory for the vocabulary");
		st->buf = buf;
		st->buf_alloc = na;
	}
	memcpy(st->buf + st->buf_len, s, n);
	st->buf[st->buf_len + n] = '\0';
	st->off[st->n] = st->buf_len;
	st->len[st->n] = (uint32_t)n;
	st->poly[st->n] = poly_hash(s, n);
	st->buf_len += n + 1;
	uint32_t id = st->n++;
	if (!st->slot || (uint64_t)st->n * 2 > (uint64_t)st->mask + 1) {
		if (symtab_rehash(st, st->n * 2 + 16) < 0)
			return -1;
	} else {
		symtab_place(st, id);
	}
	return (int32_t)id;
}

static int32_t symtab_intern(struct symtab *st, const char *s, size_t n)
{
	int32_t id = symtab_find(st, s, n);
	return id >= 0 ? id : symtab_add(st, s, n);
}

static void symtab_free(struct symtab *st)
{
	free(st->buf);
	free(st->off);
	free(st->len);
	free(st->poly);
	free(st->slot);
}

/* ---- merge rules ------------------------------------------------------- */

/* (left id, right id) -> rank and result id; key UINT64_MAX marks empty. */
struct merge_slot {
	uint64_t key;
	int32_t rank;
	int32_t result;
};

struct merge_map {
	struct merge_slot *slot; /* [mask + 1] */
	uint64_t mask;
	uint64_t n;
};

static uint64_t hash_u64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

static const struct merge_slot *merge_find(const struct merge_map *m, int32_t a, int32_t b)
{
	if (!m->slot || a < 0 || b < 0)
		return NULL;
	uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
	uint64_t i = hash_u64(key) & m->mask;
	for (;;) {
		const struct merge_slot *s = &m->slot[i];
		if (s->key == key)
			return s;
		if (s->key == UINT64_MAX)
			return NULL;
		i = (i + 1) & m->mask;
	}
}

/* Insert (a, b) -> (rank, result) unless present; grows at half load.
 * 0, or -1 after error(). */
static int merge_insert(struct merge_map *m, int32_t a, int32_t b, int32_t rank, int32_t result)
{
	if (!m->slot || (m->n + 1) * 2 > m->mask + 1) {
		uint64_t size = m->slot ? (m->mask + 1) * 2 : 1024;
		if (size > SIZE_MAX / sizeof(struct merge_slot))
			return error("too many merges");
		struct merge_slot *slot = try_alloc_array((size_t)size, sizeof(*slot));
		if (!slot)
			return error("out of memory for the merge table");
		memset(slot, 0xff, (size_t)size * sizeof(*slot));
		for (uint64_t i = 0; m->slot && i <= m->mask; i++) {
			if (m->slot[i].key == UINT64_MAX)
				continue;
			uint64_t j = hash_u64(m->slot[i].key) & (size - 1);
			while (slot[j].key != UINT64_MAX)
				j = (j + 1) & (size - 1);
			slot[j] = m->slot[i];
		}
		free(m->slot);
		m->slot = slot;
		m->mask = size - 1;
	}
	uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
	uint64_t i = hash_u64(key) & m->mask;
	while (m->slot[i].key != UINT64_MAX) {
		if (m->slot[i].key == key)
			return 0; /* the first rank of a repeated rule wins */
		i = (i + 1) & m->mask;
	}
	m->slot[i] = (struct merge_slot){ key, rank, result };
	m->n++;
	return 0;
}

/* ---- the tokenizer ----------------------------------------------------- */

struct trie_node {
	int32_t child;   /* first child node, -1 = none */
	int32_t sibling; /* next node with the same parent, -1 = none */
	int32_t id;      /* token ending here, -1 = none */
	unsigned char byte;
};

struct tokenizer {
	enum tokenizer_kind kind;
	enum tokenizer_pre pre;
	char *pre_name;    /* as given, or "default" */
	int pre_fell_back; /* unknown pre: gpt-2 rules in use */
	int ignore_merges; /* a word that is a whole token is taken as is (llama3) */
	int32_t n_vocab;
	struct symtab sym;       /* tokens [0, n_vocab), then merge-only strings */
	float *score;            /* [n_vocab] */
	unsigned char *type;     /* [n_vocab] enum token_type */
	unsigned char *attr;     /* [n_vocab] ATTR_* */
	char *piece_buf;         /* all pieces back to back */
	size_t *piece_off;       /* [n_vocab + 1] piece id is piece_buf[off[id] .. off[id + 1]) */
	struct merge_map merges; /* gpt2: merge rules; spm: token pairs that form a token */
	struct merge_map joins;  /* spm: adjacent character pairs seen inside some token */
	/* spm fast paths: ids of the one-byte characters and of U+2581, and the
	 * joins among them as a bitmap (index 128 stands for U+2581) */
	int32_t small_id[129];
	uint8_t small_join[129][(129 + 7) / 8];
	int32_t byte_sym[256];   /* gpt2: symbol of each byte's alphabet character, -1 = none */
	int32_t byte_token[256]; /* spm: <0xNN> token (or the one-byte token), -1 = none */
	struct trie_node *trie;  /* [n_trie] node 0 is the root */
	int32_t n_trie, trie_alloc;
	int32_t root_child[256];              /* root's child for each first byte, -1 = none */
	int32_t bos, eos, eot, eom, unk, pad; /* -1 = none */
	int add_bos, add_eos, add_space_prefix;
};

/* ---- small growable arrays for one encode call ------------------------- */

struct ivec {
	int32_t *v;
	size_t n, alloc;
	int failed; /* an allocation failed; the content is incomplete */
};

static void ivec_push(struct ivec *a, int32_t x)
{
	if (a->n == a->alloc) {
		size_t na = a->alloc ? a->alloc * 2 : 256;
		int32_t *v = a->failed ? NULL : try_alloc_array(na, sizeof(*v));
		if (!v) {
			a->failed = 1;
			return;
		}
		if (a->n)
			memcpy(v, a->v, a->n * sizeof(*v));
		free(a->v);
		a->v = v;
		a->alloc = na;
	}
	a->v[a->n++] = x;
}

/* A symbol during merging: a byte range of the word and the id it forms. */
struct symbol {
	uint32_t start, len; /* bytes of the (escaped) word; len 0 = merged away */
	int32_t prev, next;  /* neighbours, -1 = none */
	int32_t id;          /* symbol-table id of the bytes, -1 = none */
};

/* A candidate merge of two adjacent symbols. */
struct bigram {
	uint64_t key;        /* heap order, smallest first (priority, then left) */
	int32_t left, right; /* symbol indices */
	uint32_t llen, rlen; /* their lengths when queued: stale if they changed */
	int32_t result;      /* id of the merged symbol */
};

/* Scratch space for one encode call (freed at its end). */
struct encoder {
	const struct tokenizer *t;
	struct ivec out;
	char *buf; /* escaped SPM text or a BPE word */
	size_t buf_alloc;
	struct symbol *sym;
	size_t sym_alloc;
	struct bigram *heap;
	size_t heap_n, heap_alloc;
	uint32_t *cp;      /* code points of a BPE fragment */
	unsigned char *fl; /* their unicode_flags */
	size_t cp_alloc, fl_alloc;
	size_t *ends, *ends2; /* chunk ends (code point offsets) */
	size_t ends_n, ends_alloc;
	size_t last_end;   /* the last boundary emitted (or the chunk's start) */
	struct wcache *wc; /* BPE results of recent words, NULL until needed */
	int oom;
};

/*
 * Words repeat: a direct-mapped cache of word bytes -> token ids for one
 * encode call (BPE of a word depends on nothing else).  Entries point into
 * two append-only arenas; when those are full, nothing more is cached.
 */
#define WCACHE_SLOTS 8192
#define WCACHE_MAX_WORD 64
#define WCACHE_ARENA (1u << 22)
struct wcache_slot {
	uint64_t hash;       /* 0 = empty */
	uint32_t woff, wlen; /* the word in words[] */
	uint32_t ioff, n;    /* its ids in ids[] */
};
struct wcache {
	struct wcache_slot slot[WCACHE_SLOTS];
	char words[WCACHE_ARENA];
	int32_t ids[WCACHE_ARENA / 4];
	uint32_t words_n, ids_n;
};

/* Make *p hold at least need elements (contents kept); -1 and *oom set on failure. */
static int grow(void **p, size_t *alloc, size_t need, size_t elem, int *oom)
{
	if (need <= *alloc)
		return 0;
	size_t na = *alloc ? *alloc : 64;
	while (na < need) {
		if (na > SIZE_MAX / 4)
			goto fail;
		na *= 2;
	}
	void *q = try_alloc_array(na, elem);
	if (!q)
		goto fail;
	if (*p && *alloc)
		memcpy(q, *p, *alloc * elem); /* keep what the buffer holds */
	free(*p);
	*p = q;
	*alloc = na;
	return 0;
fail:
	*oom = 1;
	return -1;
}

static void heap_push(struct encoder *e, const struct bigram *b)
{
	if (e->heap_n == e->heap_alloc) {
		size_t na = e->heap_alloc ? e->heap_alloc * 2 : 256;
		struct bigram *h = try_alloc_array(na, sizeof(*h));
		if (!h) {
			e->oom = 1;
			return;
		}
		if (e->heap_n)
			memcpy(h, e->heap, e->heap_n * sizeof(*h));
		free(e->heap);
		e->heap = h;
		e->heap_alloc = na;
	}
	size_t i = e->heap_n++;
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (e->heap[p].key <= b->key)
			break;
		e->heap[i] = e->heap[p];
		i = p;
	}
	e->heap[i] = *b;
}

static struct bigram heap_pop(struct encoder *e)
{
	struct bigram top = e->heap[0];
	struct bigram last = e->heap[--e->heap_n];
	size_t i = 0, n = e->heap_n;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && e->heap[c + 1].key < e->heap[c].key)
			c++;
		if (last.key <= e->heap[c].key)
			break;
		e->heap[i] = e->heap[c];
		i = c;
	}
	if (n)
		e->heap[i] = last;
	return top;
}

/* ---- SentencePiece ------------------------------------------------------ */

/* Map a float to a key that sorts descending by score. */
static uint32_t score_key_desc(float f)
{
	uint32_t u;
	memcpy(&u, &f, sizeof(u));
	u = (u & 0x80000000u) ? ~u : (u | 0x80000000u); /* ascending order */
	return ~u;
}

static void spm_try_pair(struct encoder *e, int32_t l, int32_t r)
{
	if (l < 0 || r < 0)
		return;
	const struct tokenizer *t = e->t;
	struct symbol *a = &e->sym[l], *b = &e->sym[r];
	int32_t id;
	if (a->id >= 0 && b->id >= 0) {
		const struct merge_slot *m = merge_find(&t->merges, a->id, b->id);
		id = m ? m->result : -1;
	} else {
		id = symtab_find(&t->sym, e->buf + a->start, (size_t)a->len + b->len);
	}
	if (id < 0 || id >= t->n_vocab)
		return;
	struct bigram bg = {
		.key = ((uint64_t)score_key_desc(t->score[id]) << 32) | (uint32_t)l,
		.left = l,
		.right = r,
		.llen = a->len,
		.rlen = b->len,
		.result = id,
	};
	heap_push(e, &bg);
}

static void spm_byte_fallback(struct encoder *e, const char *s, size_t n)
{
	const struct tokenizer *t = e->t;
	for (size_t i = 0; i < n; i++) {
		int32_t id = t->byte_token[(unsigned char)s[i]];
		if (id < 0)
			id = t->unk;
		if (id >= 0)
			ivec_push(&e->out, id);
	}
}

/* A character (SentencePiece symbol, 1-4 bytes) packed into 32 bits.  The
 * lead byte fixes the length, so distinct symbols get distinct keys. */
static uint32_t spm_char_key(const char *s, size_t n)
{
	uint32_t k = 0;
	for (size_t i = 0; i < n && i < 4; i++)
		k = (k << 8) | (unsigned char)s[i];
	return k;
}

/* 0..127 for an ASCII character, 128 for U+2581, -1 for anything else. */
static int spm_small_index(const char *s, size_t n)
{
	if (n == 1 && !((unsigned char)s[0] & 0x80))
		return (unsigned char)s[0];
	if (n == 3 && !memcmp(s, "\xe2\x96\x81", 3))
		return 128;
	return -1;
}

static int spm_joins(const struct tokenizer *t, const char *a, size_t an, const char *b, size_t bn)
{
	int x = spm_small_index(a, an), y = spm_small_index(b, bn);
	if (x >= 0 && y >= 0)
		return (t->small_join[x][y / 8] >> (y % 8)) & 1;
	return merge_find(&t->joins, (int32_t)spm_char_key(a, an), (int32_t)spm_char_key(b, bn)) !=
	       NULL;
}

/* Merge symbols [r0, r1), highest score first, ties leftmost. */
static void spm_merge(struct encoder *e, int32_t r0, int32_t r1)
{
	e->heap_n = 0;
	for (int32_t i = r0 + 1; i < r1; i++)
		spm_try_pair(e, i - 1, i);
	while (e->heap_n && !e->oom) {
		struct bigram bg = heap_pop(e);
		struct symbol *a = &e->sym[bg.left], *b = &e->sym[bg.right];
		if (a->len == 0 || b->len == 0 || a->len != bg.llen || b->len != bg.rlen)
			continue; /* one side changed since the pair was queued */
		a->len += b->len;
		a->id = bg.result;
		b->len = 0;
		a->next = b->next;
		if (b->next >= 0)
			e->sym[b->next].prev = bg.left;
		spm_try_pair(e, a->prev, bg.left);
		spm_try_pair(e, bg.left, a->next);
	}
}

/* Encode one raw fragment with SentencePiece rules. */
static void spm_fragment(struct encoder *e, const char *text, size_t len, int prefix_space)
{
	const struct tokenizer *t = e->t;
	size_t n = 0, cap;

	/* escaped text: each space (and the prefix) becomes U+2581 (3 bytes) */
	if (size_mul(len + 1, 3, &cap) || grow((void **)&e->buf, &e->buf_alloc, cap, 1, &e->oom))
		return;
	if (prefix_space) {
		memcpy(e->buf, "\xe2\x96\x81", 3);
		n = 3;
	}
	for (size_t i = 0; i < len; i++) {
		if (text[i] == ' ') {
			memcpy(e->buf + n, "\xe2\x96\x81", 3);
			n += 3;
		} else {
			e->buf[n++] = text[i];
		}
	}
	if (n > UINT32_MAX / 2 || n > INT32_MAX / 2) {
		e->oom = 1;
		return;
	}

	/* one symbol per UTF-8 character (length from the lead byte) */
	if (grow((void **)&e->sym, &e->sym_alloc, n, sizeof(*e->sym), &e->oom))
		return;
	int32_t ns = 0;
	for (size_t off = 0; off < n;) {
		size_t cl = unicode_utf8_len((unsigned char)e->buf[off]);
		if (cl > n - off)
			cl = n - off;
		struct symbol *s = &e->sym[ns];
		s->start = (uint32_t)off;
		s->len = (uint32_t)cl;
		off += cl;
		int k = spm_small_index(e->buf + s->start, cl);
		s->id = k >= 0 ? t->small_id[k] : symtab_find(&t->sym, e->buf + s->start, cl);
		ns++;
	}

	/*
	 * Merge region by region: no token holds the two characters on either
	 * side of a region boundary next to each other, so no merge can cross
	 * it, and merges in different regions never interact.  Small regions
	 * keep the heap small (and in cache) on long texts.
	 */
	for (int32_t r0 = 0, r1; r0 < ns; r0 = r1) {
		for (r1 = r0 + 1; r1 < ns; r1++) {
			const struct symbol *a = &e->sym[r1 - 1], *b = &e->sym[r1];
			if (!spm_joins(t, e->buf + a->start, a->len, e->buf + b->start, b->len))
				break;
		}
		for (int32_t i = r0; i < r1; i++) {
			e->sym[i].prev = i - 1 >= r0 ? i - 1 : -1;
			e->sym[i].next = i + 1 < r1 ? i + 1 : -1;
		}
		spm_merge(e, r0, r1);
		if (e->oom)
			return;
		for (int32_t i = r0; i >= 0; i = e->sym[i].next) {
			const struct symbol *s = &e->sym[i];
			if (s->id >= 0 && s->id < t->n_vocab)
				ivec_push(&e->out, s->id);
			else
				spm_byte_fallback(e, e->buf + s->start, s->len);
		}
	}
}

/* ---- byte-level BPE ----------------------------------------------------- */

static void bpe_try_pair(struct encoder *e, int32_t l, int32_t r)
{
	if (l < 0 || r < 0)
		return;
	const struct symbol *a = &e->sym[l], *b = &e->sym[r];
	const struct merge_slot *m = merge_find(&e->t->merges, a->id, b->id);
	if (!m)
		return;
	struct bigram bg = {
		.key = ((uint64_t)(uint32_t)m->rank << 32) | (uint32_t)l,
		.left = l,
		.right = r,
		.llen = a->len,
		.rlen = b->len,
		.result = m->result,
	};
	heap_push(e, &bg);
}

/* Byte-level encoding of s[0..n) appended at e->buf + at; returns the new end. */
static size_t bpe_encode_bytes(struct encoder *e, const char *s, size_t n, size_t at)
{
	for (size_t i = 0; i < n; i++)
		at += unicode_encode(unicode_byte_to_cp((unsigned char)s[i]), e->buf + at);
	return at;
}

/* Merge one pre-tokenized word (raw UTF-8 bytes in e->buf[0..n)). */
static void bpe_word(struct encoder *e, size_t n)
{
	const struct tokenizer *t = e->t;

	if (n > INT32_MAX / 4) {
		e->oom = 1;
		return;
	}
	if (t->ignore_merges) {
		/* the whole word in the byte alphabet, after the raw bytes */
		if (grow((void **)&e->buf, &e->buf_alloc, n * 3, 1, &e->oom))
			return;
		size_t end = bpe_encode_bytes(e, e->buf, n, n);
		int32_t id = symtab_find(&t->sym, e->buf + n, end - n);
		if (id >= 0 && id < t->n_vocab) {
			ivec_push(&e->out, id);
			return;
		}
	}
	if (grow((void **)&e->sym, &e->sym_alloc, n, sizeof(*e->sym), &e->oom))
		return;
	int32_t ns = (int32_t)n;
	for (int32_t i = 0; i < ns; i++) {
		struct symbol *s = &e->sym[i];
		s->start = (uint32_t)i;
		s->len = 1;
		s->prev = i - 1;
		s->next = i + 1 == ns ? -1 : i + 1;
		s->id = t->byte_sym[(unsigned char)e->buf[i]];
	}
	e->heap_n = 0;
	for (int32_t i = 1; i < ns; i++)
		bpe_try_pair(e, i - 1, i);
	while (e->heap_n && !e->oom) {
		struct bigram bg = heap_pop(e);
		struct symbol *a = &e->sym[bg.left], *b = &e->sym[bg.right];
		if (a->len == 0 || b->len == 0 || a->len != bg.llen || b->len != bg.rlen)
			continue;
		a->len += b->len;
		a->id = bg.result;
		b->len = 0;
		a->next = b->next;
		if (b->next >= 0)
			e->sym[b->next].prev = bg.left;
		bpe_try_pair(e, a->prev, bg.left);
		bpe_try_pair(e, bg.left, a->next);
	}
	for (int32_t i = ns ? 0 : -1; i >= 0; i = e->sym[i].next) {
		const struct symbol *s = &e->sym[i];
		if (s->id >= 0 && s->id < t->n_vocab) {
			ivec_push(&e->out, s->id);
			continue;
		}
		/* not a token: each byte of its alphabet form, as a one-byte token if any */
		for (uint32_t k = 0; k < s->len; k++) {
			char enc[4];
			size_t el = unicode_encode(
				unicode_byte_to_cp((unsigned char)e->buf[s->start + k]), enc);
			for (size_t j = 0; j < el; j++) {
				int32_t id = symtab_find(&t->sym, enc + j, 1);
				if (id >= 0 && id < t->n_vocab)
					ivec_push(&e->out, id);
			}
		}
	}
}

/* ---- pre-tokenizer passes ----------------------------------------------- */

/*
 * A pass splits the chunk [s, e) of code points and appends the ends of the
 * pieces (matches and the gaps between them) to e->ends2.
 */
typedef void (*pass_fn)(struct encoder *e, size_t s, size_t end);

static void emit(struct encoder *e, size_t end)
{
	/* ends2 has room for one end per code point (checked by the driver) */
	if (end != e->last_end) {
		e->ends2[e->ends_n++] = end;
		e->last_end = end;
	}
}

#define OOR UINT32_MAX /* "code point" past the end of a chunk */

static int ascii_ws(uint32_t c)
{
	return c == ' ' || (c >= 9 && c <= 13);
}

/* \s as std::regex and std::wregex see the prepared text: ASCII white
 * space, and non-ASCII White_Space (replaced by a vertical tab). */
static int re_ws(uint32_t c, unsigned f)
{
	return c < 128 ? ascii_ws(c) : (f & UNICODE_WHITESPACE) != 0;
}

/* Collapsed classes: ASCII as itself, non-ASCII by category (white space first). */
static int coll_class(uint32_t c, unsigned f, enum unicode_class want)
{
	return !(f & UNICODE_WHITESPACE) && (f & UNICODE_CLASS_MASK) == (unsigned)want;
}

static int coll_letter(uint32_t c, unsigned f)
{
	if (c < 128)
		return (c | 32) >= 'a' && (c | 32) <= 'z';
	return coll_class(c, f, UNICODE_LETTER);
}

static int coll_number(uint32_t c, unsigned f)
{
	if (c < 128)
		return c >= '0' && c <= '9';
	return coll_class(c, f, UNICODE_NUMBER);
}

/* ASCII punctuation as llama.cpp spells \p{P} for the collapsed text. */
static int ascii_punct(uint32_t c)
{
	return (c >= 0x21 && c <= 0x23) || (c >= 0x25 && c <= 0x2A) || (c >= 0x2C && c <= 0x2F) ||
	       c == 0x3A || c == 0x3B || c == 0x3F || c == 0x40 || (c >= 0x5B && c <= 0x5D) ||
	       c == 0x5F || c == 0x7B || c == 0x7D;
}

static int coll_punct(uint32_t c, unsigned f)
{
	if (c < 128)
		return ascii_punct(c);
	return coll_class(c, f, UNICODE_PUNCT);
}

/* [\p{P}\$\+<=>\^~\|`] (falcon) */
static int coll_punct_sym_bt(uint32_t c, unsigned f)
{
	return coll_punct(c, f) || (c < 128 && strchr("$+<=>^~|`", (int)c) && c);
}

/* [\p{P}\$\+<=>\^~\|] (default) */
static int coll_punct_sym(uint32_t c, unsigned f)
{
	return coll_punct(c, f) || (c < 128 && strchr("$+<=>^~|", (int)c) && c);
}

static int is_crlf(uint32_t c, unsigned f)
{
	(void)f;
	return c == '\r' || c == '\n';
}

static int ascii_digit(uint32_t c, unsigned f)
{
	(void)f;
	return c >= '0' && c <= '9';
}

struct cp_range {
	uint32_t lo, hi;
};

static int in_ranges(uint32_t c, const struct cp_range *r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (c >= r[i].lo && c <= r[i].hi)
			return 1;
	return 0;
}

/* The same for ranges sorted by lo and disjoint. */
static int in_sorted_ranges(uint32_t c, const struct cp_range *r, size_t n)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (c < r[mid].lo)
			hi = mid;
		else if (c > r[mid].hi)
			lo = mid + 1;
		else
			return 1;
	}
	return 0;
}

/* The character classes of deepseek's tokenizer.json, as code point ranges.
 * (They are the tokenizer's own definition, not Unicode data.) */
static const struct cp_range ds_letters[] = {
	{ 0x0041, 0x005A },   { 0x0061, 0x007A },   { 0x00B5, 0x00B5 },   { 0x00C0, 0x00D6 },
	{ 0x00D8, 0x00F6 },   { 0x00F8, 0x01BA },   { 0x01BC, 0x01BF },   { 0x01C4, 0x0293 },
	{ 0x0295, 0x02AF },   { 0x0370, 0x0373 },   { 0x0376, 0x0377 },   { 0x037B, 0x037D },
	{ 0x037F, 0x037F },   { 0x0386, 0x0386 },   { 0x0388, 0x038A },   { 0x038C, 0x038C },
	{ 0x038E, 0x03A1 },   { 0x03A3, 0x03F5 },   { 0x03F7, 0x0481 },   { 0x048A, 0x052F },
	{ 0x0531, 0x0556 },   { 0x10A0, 0x10C5 },   { 0x13A0, 0x13F5 },   { 0x13F8, 0x13FD },
	{ 0x1C90, 0x1CBA },   { 0x1CBD, 0x1CBF },   { 0x1D00, 0x1D2B },   { 0x1D6B, 0x1D77 },
	{ 0x1D79, 0x1D9A },   { 0x1E00, 0x1F15 },   { 0x1F18, 0x1F1D },   { 0x1F20, 0x1F45 },
	{ 0x1F48, 0x1F4D },   { 0x1F50, 0x1F57 },   { 0x1F59, 0x1F59 },   { 0x1F5B, 0x1F5B },
	{ 0x1F5D, 0x1F5D },   { 0x1F5F, 0x1F7D },   { 0x1F80, 0x1FB4 },   { 0x1FB6, 0x1FBC },
	{ 0x1FBE, 0x1FBE },   { 0x1FC2, 0x1FC4 },   { 0x1FC6, 0x1FCC },   { 0x1FD0, 0x1FD3 },
	{ 0x1FD6, 0x1FDB },   { 0x1FE0, 0x1FEC },   { 0x1FF2, 0x1FF4 },   { 0x1FF6, 0x1FFC },
	{ 0x2102, 0x2102 },   { 0x2107, 0x2107 },   { 0x210A, 0x2113 },   { 0x2115, 0x2115 },
	{ 0x2119, 0x211D },   { 0x2124, 0x2124 },   { 0x2126, 0x2126 },   { 0x2128, 0x2128 },
	{ 0x212A, 0x212D },   { 0x212F, 0x2134 },   { 0x2139, 0x2139 },   { 0x213C, 0x213F },
	{ 0x2145, 0x2149 },   { 0x214E, 0x214E },   { 0x2183, 0x2184 },   { 0x2C00, 0x2C7B },
	{ 0x2C7E, 0x2CE4 },   { 0x2CEB, 0x2CEE },   { 0x2CF2, 0x2CF3 },   { 0xA640, 0xA66D },
	{ 0xA680, 0xA69B },   { 0xA722, 0xA76F },   { 0xA771, 0xA787 },   { 0xA78B, 0xA78E },
	{ 0xAB70, 0xABBF },   { 0xFB00, 0xFB06 },   { 0xFB13, 0xFB17 },   { 0xFF21, 0xFF3A },
	{ 0xFF41, 0xFF5A },   { 0x10400, 0x1044F }, { 0x104B0, 0x104D3 }, { 0x104D8, 0x104FB },
	{ 0x10C80, 0x10CB2 }, { 0x10CC0, 0x10CF2 }, { 0x118A0, 0x118DF }, { 0x1E900, 0x1E943 },
};
static const struct cp_range ds_punct[] = {
	{ 0x0021, 0x002F }, { 0x003A, 0x007E }, { 0xFF01, 0xFF0F },
	{ 0xFF1A, 0xFF5E }, { 0x2018, 0x201F }, { 0x3000, 0x3002 },
};
static const struct cp_range ds_cjk[] = {
	{ 0x4E00, 0x9FA5 },
	{ 0x0800, 0x4E00 },
	{ 0xAC00, 0xD7FF },
};

/* Wide (std::wregex) classes: non-ASCII white space was replaced, so it
 * matches no range. */
static int wide_ds_letter(uint32_t c, unsigned f)
{
	if (c < 128)
		return (c | 32) >= 'a' && (c | 32) <= 'z';
	return !(f & UNICODE_WHITESPACE) &&
	       in_sorted_ranges(c, ds_letters, sizeof(ds_letters) / sizeof(ds_letters[0]));
}

static int wide_ds_punct(uint32_t c, unsigned f)
{
	if (c < 128)
		return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x7E);
	return !(f & UNICODE_WHITESPACE) &&
	       in_ranges(c, ds_punct, sizeof(ds_punct) / sizeof(ds_punct[0]));
}

static int wide_cjk(uint32_t c, unsigned f)
{
	return c >= 0x800 && !(f & UNICODE_WHITESPACE) &&
	       in_ranges(c, ds_cjk, sizeof(ds_cjk) / sizeof(ds_cjk[0]));
}

typedef int (*class_fn)(uint32_t c, unsigned f);

/* "X": every code point of the class is a piece of its own. */
static void split_each(struct encoder *e, size_t s, size_t end, class_fn x)
{
	for (size_t i = s; i < end; i++) {
		if (x(e->cp[i], e->fl[i])) {
			emit(e, i);
			emit(e, i + 1);
		}
	}
	emit(e, end);
}

/* "X+": maximal runs of the class are pieces. */
static void split_runs(struct encoder *e, size_t s, size_t end, class_fn x)
{
	size_t i = s;
	while (i < end) {
		if (!x(e->cp[i], e->fl[i])) {
			i++;
			continue;
		}
		emit(e, i);
		while (i < end && x(e->cp[i], e->fl[i]))
			i++;
		emit(e, i);
	}
	emit(e, end);
}

/* "\s?X+" (the class never contains white space). */
static void split_ws_runs(struct encoder *e, size_t s, size_t end, class_fn x)
{
	size_t i = s;
	while (i < end) {
		size_t m;
		if (x(e->cp[i], e->fl[i]))
			m = i;
		else if (re_ws(e->cp[i], e->fl[i]) && i + 1 < end && x(e->cp[i + 1], e->fl[i + 1]))
			m = i + 1;
		else {
			i++;
			continue;
		}
		emit(e, i);
		i = m;
		while (i < end && x(e->cp[i], e->fl[i]))
			i++;
		emit(e, i);
	}
	emit(e, end);
}

/* "\s+$": the white space that ends the chunk. */
static void split_trailing_ws(struct encoder *e, size_t s, size_t end)
{
	size_t j = end;
	while (j > s && re_ws(e->cp[j - 1], e->fl[j - 1]))
		j--;
	emit(e, j);
	emit(e, end);
}

/* "[0-9][0-9][0-9]": triples of ASCII digits from the left of each run. */
static void split_digit3(struct encoder *e, size_t s, size_t end)
{
	size_t i = s;
	while (i < end) {
		if (!ascii_digit(e->cp[i], 0)) {
			i++;
			continue;
		}
		size_t j = i;
		while (j < end && ascii_digit(e->cp[j], 0))
			j++;
		for (; j - i >= 3; i += 3) {
			emit(e, i);
			emit(e, i + 3);
		}
		i = j;
	}
	emit(e, end);
}

/* flags inside the chunk, 0 past it (as llama.cpp's custom matchers) */
#define FL(i) ((i) < end ? (unsigned)e->fl[i] : 0u)
#define CP(i) ((i) < end ? e->cp[i] : OOR)
#define IS_L(f) (((f)&UNICODE_CLASS_MASK) == UNICODE_LETTER)
#define IS_N(f) (((f)&UNICODE_CLASS_MASK) == UNICODE_NUMBER)
#define IS_WS(f) (((f)&UNICODE_WHITESPACE) != 0)

/* 's|'t|'re|'ve|'m|'ll|'d (case-insensitive when ci): length matched or 0 */
static size_t contraction(struct encoder *e, size_t i, size_t end, int ci)
{
	if (CP(i) != '\'' || i + 1 >= end)
		return 0;
	uint32_t a = CP(i + 1);
	if (ci && a < 128)
		a |= (a >= 'A' && a <= 'Z') ? 32 : 0;
	if (a == 's' || a == 't' || a == 'm' || a == 'd')
		return 2;
	if (i + 2 >= end)
		return 0;
	uint32_t b = CP(i + 2);
	if (ci && b < 128)
		b |= (b >= 'A' && b <= 'Z') ? 32 : 0;
	if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
		return 3;
	return 0;
}

/* The gpt-2 expression, as llama.cpp's custom matcher:
 * 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S) */
static void split_gpt2(struct encoder *e, size_t s, size_t end)
{
	size_t pos = s;
	while (pos < end) {
		uint32_t c = CP(pos);
		unsigned f = FL(pos);
		size_t n = contraction(e, pos, end, 0);
		if (n) {
			pos += n;
			emit(e, pos);
			continue;
		}
		unsigned f2 = c == ' ' ? FL(pos + 1) : f;
		if (IS_L(f2)) {
			pos += c == ' ';
			while (IS_L(FL(pos)))
				pos++;
			emit(e, pos);
			continue;
		}
		if (IS_N(f2)) {
			pos += c == ' ';
			while (IS_N(FL(pos)))
				pos++;
			emit(e, pos);
			continue;
		}
		if (!(IS_WS(f2) || IS_L(f2) || IS_N(f2)) && f2) {
			pos += c == ' ';
			for (;;) {
				unsigned g = FL(pos);
				if (IS_WS(g) || IS_L(g) || IS_N(g) || !g)
					break;
				pos++;
			}
			emit(e, pos);
			continue;
		}
		size_t nws = 0;
		while (IS_WS(FL(pos + nws)))
			nws++;
		if (nws > 1 && CP(pos + nws) != OOR) {
			pos += nws - 1;
			emit(e, pos);
			continue;
		}
		if (nws > 0) {
			pos += nws;
			emit(e, pos);
			continue;
		}
		emit(e, ++pos);
	}
	emit(e, end);
}

/*
 * The llama3 family:
 * (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,D}|
 *  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * D = 3 for llama3 (llama.cpp's custom matcher: classes by Unicode category,
 * an unassigned code point is in none), D = 1 for qwen2 (std::regex on the
 * collapsed text: an unassigned code point is "other").
 */
static void split_llama3_like(struct encoder *e, size_t s, size_t end, size_t max_digits,
			      int collapsed)
{
	size_t pos = s;
	while (pos < end) {
		uint32_t c = CP(pos);
		unsigned f = FL(pos);
		if (collapsed && f == 0)
			f = UNICODE_OTHER; /* the collapsed text's fallback byte */
		size_t n = contraction(e, pos, end, 1);
		if (n) {
			pos += n;
			emit(e, pos);
			continue;
		}
		/* [^\r\n\p{L}\p{N}]?\p{L}+ */
		if (!(c == '\r' || c == '\n' || IS_N(f)) && (IS_L(f) || IS_L(FL(pos + 1)))) {
			pos++;
			while (IS_L(FL(pos)))
				pos++;
			emit(e, pos);
			continue;
		}
		/* \p{N}{1,D} */
		if (IS_N(f)) {
			size_t k = 0;
			while (k < max_digits && IS_N(FL(pos)))
				pos++, k++;
			emit(e, pos);
			continue;
		}
		/*  ?[^\s\p{L}\p{N}]+[\r\n]* */
		unsigned f2 = c == ' ' ? FL(pos + 1) : f;
		if (collapsed && c == ' ' && pos + 1 < end && f2 == 0)
			f2 = UNICODE_OTHER;
		int other2 = !(IS_WS(f2) || IS_L(f2) || IS_N(f2)) && (collapsed ? f2 != 0 : f != 0);
		if (other2) {
			pos += c == ' ';
			for (;;) {
				unsigned g = FL(pos);
				if (collapsed && pos < end && g == 0)
					g = UNICODE_OTHER;
				if (IS_WS(g) || IS_L(g) || IS_N(g) || !g)
					break;
				pos++;
			}
			while (CP(pos) == '\r' || CP(pos) == '\n')
				pos++;
			emit(e, pos);
			continue;
		}
		size_t nws = 0, last_nl = 0;
		while (IS_WS(FL(pos + nws))) {
			uint32_t c2 = CP(pos + nws);
			if (c2 == '\r' || c2 == '\n')
				last_nl = pos + nws + 1;
			nws++;
		}
		if (last_nl) { /* \s*[\r\n]+ */
			pos = last_nl;
			emit(e, pos);
			continue;
		}
		if (nws > 1 && CP(pos + nws) != OOR) { /* \s+(?!\S) */
			pos += nws - 1;
			emit(e, pos);
			continue;
		}
		if (nws > 0) { /* \s+ */
			pos += nws;
			emit(e, pos);
			continue;
		}
		emit(e, ++pos);
	}
	emit(e, end);
}

#undef FL
#undef CP

static void pass_gpt2(struct encoder *e, size_t s, size_t end)
{
	split_gpt2(e, s, end);
}
static void pass_llama3(struct encoder *e, size_t s, size_t end)
{
	split_llama3_like(e, s, end, 3, 0);
}
static void pass_qwen2(struct encoder *e, size_t s, size_t end)
{
	split_llama3_like(e, s, end, 1, 1);
}
static void pass_each_number(struct encoder *e, size_t s, size_t end)
{
	split_each(e, s, end, coll_number);
}
static void pass_number_runs(struct encoder *e, size_t s, size_t end)
{
	split_runs(e, s, end, coll_number);
}
static void pass_each_crlf(struct encoder *e, size_t s, size_t end)
{
	split_each(e, s, end, is_crlf);
}
static void pass_ws_letters(struct encoder *e, size_t s, size_t end)
{
	split_ws_runs(e, s, end, coll_letter);
}
static void pass_ws_punct(struct encoder *e, size_t s, size_t end)
{
	split_ws_runs(e, s, end, coll_punct);
}
static void pass_ds_letters(struct encoder *e, size_t s, size_t end)
{
	split_ws_runs(e, s, end, wide_ds_letter);
}
static void pass_ds_punct(struct encoder *e, size_t s, size_t end)
{
	split_ws_runs(e, s, end, wide_ds_punct);
}
static void pass_cjk(struct encoder *e, size_t s, size_t end)
{
	split_runs(e, s, end, wide_cjk);
}
static void pass_punct_sym_bt(struct encoder *e, size_t s, size_t end)
{
	split_runs(e, s, end, coll_punct_sym_bt);
}
static void pass_punct_sym(struct encoder *e, size_t s, size_t end)
{
	split_runs(e, s, end, coll_punct_sym);
}

#define MAX_PASSES 6
static const pass_fn pre_passes[][MAX_PASSES + 1] = {
	[TOKENIZER_PRE_DEFAULT] = { pass_punct_sym, pass_gpt2, pass_number_runs, split_digit3,
				    NULL },
	[TOKENIZER_PRE_GPT2] = { pass_gpt2, NULL },
	[TOKENIZER_PRE_LLAMA3] = { pass_llama3, NULL },
	[TOKENIZER_PRE_QWEN2] = { pass_qwen2, NULL },
	[TOKENIZER_PRE_DEEPSEEK_LLM] = { pass_each_crlf, pass_ds_letters, pass_ds_punct,
					 split_trailing_ws, pass_cjk, pass_number_runs, NULL },
	[TOKENIZER_PRE_DEEPSEEK_CODER] = { pass_each_crlf, pass_ws_letters, pass_ws_punct, pass_cjk,
					   pass_each_number, NULL },
	[TOKENIZER_PRE_MPT] = { pass_gpt2, NULL },
	[TOKENIZER_PRE_STARCODER] = { pass_each_number, pass_gpt2, NULL },
	[TOKENIZER_PRE_FALCON] = { pass_punct_sym_bt, pass_gpt2, split_digit3, NULL },
};

/* Decode text to code points and cut them into words with the
 * pre-tokenizer's passes: e->ends[0..return) are the words' ends (code
 * point offsets).  Returns the word count, or 0 after setting e->oom. */
static size_t pretokenize(struct encoder *e, const char *text, size_t len, size_t *ncp_out)
{
	size_t ncp = 0;

	if (grow((void **)&e->cp, &e->cp_alloc, len + 1, sizeof(*e->cp), &e->oom) ||
	    grow((void **)&e->fl, &e->fl_alloc, len + 1, 1, &e->oom))
		return 0;
	for (size_t pos = 0; pos < len;) {
		uint32_t c = unicode_decode_lenient(text, len, &pos);
		e->cp[ncp] = c;
		e->fl[ncp] = (unsigned char)unicode_flags(c);
		ncp++;
	}
	*ncp_out = ncp;
	/* room for every boundary: at most one per code point, plus the end */
	if (e->ends_alloc < ncp + 2) {
		free(e->ends);
		free(e->ends2);
		e->ends = try_alloc_array(ncp + 2, sizeof(size_t));
		e->ends2 = try_alloc_array(ncp + 2, sizeof(size_t));
		e->ends_alloc = ncp + 2;
		if (!e->ends || !e->ends2) {
			e->ends_alloc = 0;
			e->oom = 1;
			return 0;
		}
	}
	size_t n_ends = 1;
	e->ends[0] = ncp;
	for (const pass_fn *p = pre_passes[e->t->pre]; *p; p++) {
		size_t start = 0;
		e->ends_n = 0;
		for (size_t k = 0; k < n_ends; k++) {
			e->last_end = start;
			(*p)(e, start, e->ends[k]);
			start = e->ends[k];
		}
		size_t *tmp = e->ends;
		e->ends = e->ends2;
		e->ends2 = tmp;
		n_ends = e->ends_n;
	}
	return n_ends;
}

/* Encode one raw fragment with byte-level BPE rules. */
static void bpe_fragment(struct encoder *e, const char *text, size_t len)
{
	size_t ncp = 0;
	size_t n_ends = pretokenize(e, text, len, &ncp);

	/* each word: re-encode its code points (U+FFFD for what was invalid) and merge */
	size_t start = 0;
	for (size_t k = 0; k < n_ends && !e->oom; k++) {
		size_t stop = e->ends[k], n = 0;
		if (stop == start)
			continue;
		size_t need;
		if (size_mul(stop - start, 12, &need) ||
		    grow((void **)&e->buf, &e->buf_alloc, need, 1, &e->oom))
			return;
		for (size_t i = start; i < stop; i++)
			n += unicode_encode(e->cp[i], e->buf + n);
		start = stop;
		if (n > WCACHE_MAX_WORD || len < 4096) { /* short texts: not worth a cache */
			bpe_word(e, n);
			continue;
		}
		if (!e->wc) {
			e->wc = calloc(1, sizeof(*e->wc));
			if (!e->wc) {
				bpe_word(e, n);
				continue;
			}
		}
		struct wcache *wc = e->wc;
		uint64_t h = hash_bytes(e->buf, n) | 1;
		struct wcache_slot *sl = &wc->slot[h % WCACHE_SLOTS];
		if (sl->hash == h && sl->wlen == n && !memcmp(wc->words + sl->woff, e->buf, n)) {
			for (uint32_t j = 0; j < sl->n; j++)
				ivec_push(&e->out, wc->ids[sl->ioff + j]);
			continue;
		}
		size_t first = e->out.n;
		bpe_word(e, n);
		size_t got = e->out.n - first;
		if (e->out.failed || wc->words_n + n > sizeof(wc->words) ||
		    wc->ids_n + got > sizeof(wc->ids) / sizeof(wc->ids[0]))
			continue;
		memcpy(wc->words + wc->words_n, e->buf, n);
		memcpy(wc->ids + wc->ids_n, e->out.v + first, got * sizeof(int32_t));
		*sl = (struct wcache_slot){ h, wc->words_n, (uint32_t)n, wc->ids_n, (uint32_t)got };
		wc->words_n += (uint32_t)n;
		wc->ids_n += (uint32_t)got;
	}
}

static void encoder_release(struct encoder *e)
{
	free(e->out.v);
	free(e->buf);
	free(e->sym);
	free(e->heap);
	free(e->cp);
	free(e->fl);
	free(e->ends);
	free(e->ends2);
	free(e->wc);
}

int tokenizer_split(const struct tokenizer *t, const char *text, size_t len, size_t *ends, int max)
{
	struct encoder e;
	size_t ncp = 0, n;
	int ret;

	memset(&e, 0, sizeof(e));
	e.t = t;
	if (t->kind == TOKENIZER_SPM || len == 0) {
		if (len && max > 0)
			ends[0] = len;
		return len ? (max > 0 ? 1 : -1) : 0;
	}
	n = pretokenize(&e, text, len, &ncp);
	if (e.oom || n > INT32_MAX) {
		encoder_release(&e);
		return error("out of memory splitting %zu bytes", len);
	}
	/* code point offsets back to byte offsets of the input */
	size_t k = 0, cpi = 0, pos = 0;
	while (k < n) {
		while (cpi < e.ends[k]) {
			unicode_decode_lenient(text, len, &pos);
			cpi++;
		}
		if ((int)k < max)
			ends[k] = pos;
		k++;
	}
	ret = n <= (size_t)(max > 0 ? max : 0) ? (int)n : -(int)n;
	encoder_release(&e);
	return ret;
}

/* ---- special tokens ----------------------------------------------------- */

/* Longest special token at text[0..len) allowed by mask; its length or 0. */
static size_t special_match(const struct tokenizer *t, const char *text, size_t len, unsigned mask,
			    int32_t *id)
{
	int32_t node = t->root_child[(unsigned char)text[0]];
	size_t best = 0;
	for (size_t i = 1; node >= 0; i++) {
		const struct trie_node *nd = &t->trie[node];
		if (nd->id >= 0 && (t->attr[nd->id] & mask)) {
			best = i;
			*id = nd->id;
		}
		if (i >= len)
			break;
		unsigned char c = (unsigned char)text[i];
		int32_t ch = nd->child;
		while (ch >= 0 && t->trie[ch].byte != c)
			ch = t->trie[ch].sibling;
		node = ch;
	}
	return best;
}

static void encode_fragment(struct encoder *e, const char *text, size_t len, int after_special)
{
	if (len == 0)
		return;
	if (e->t->kind == TOKENIZER_SPM)
		spm_fragment(e, text, len, e->t->add_space_prefix && after_special);
	else
		bpe_fragment(e, text, len);
}

/* The body of tokenizer_encode and tokenizer_encode_ranges: with ranges,
 * control tokens are matched only inside them (flags has PARSE_SPECIAL). */
static int encode(const struct tokenizer *t, const char *text, size_t len, int flags,
		  int use_ranges, const size_t (*ranges)[2], size_t n_ranges, int32_t *out, int max)
{
	struct encoder e;
	int ret;
	size_t r = 0; /* the first range that does not end before i */

	memset(&e, 0, sizeof(e));
	e.t = t;
	if ((flags & TOKENIZE_ADD_BOS) && t->add_bos && t->bos >= 0)
		ivec_push(&e.out, t->bos);

	size_t frag = 0;
	int after_special = 1; /* the start of the text counts as after a special */
	for (size_t i = 0; i < len && !e.oom;) {
		int32_t id = -1;
		size_t n = 0;
		if (t->n_trie && t->root_child[(unsigned char)text[i]] >= 0) {
			/* user-defined tokens anywhere; control and unknown tokens
			 * with PARSE_SPECIAL, inside a range when there are ranges */
			n = special_match(t, text + i, len - i, ATTR_USER, &id);
			size_t ctl_limit = 0;
			if ((flags & TOKENIZE_PARSE_SPECIAL) && !use_ranges) {
				ctl_limit = len - i;
			} else if (flags & TOKENIZE_PARSE_SPECIAL) {
				while (r < n_ranges && ranges[r][1] <= i)
					r++;
				if (r < n_ranges && ranges[r][0] <= i)
					ctl_limit = ranges[r][1] - i;
			}
			int32_t cid = -1;
			size_t nc = ctl_limit
					    ? special_match(t, text + i, ctl_limit,
							    ATTR_USER | ATTR_CONTROL | ATTR_UNKNOWN,
							    &cid)
					    : 0;
			if (nc > n) {
				n = nc;
				id = cid;
			}
		}
		if (!n) {
			i++;
			continue;
		}
		if (i > frag) {
			encode_fragment(&e, text + frag, i - frag, after_special);
			after_special = 0;
		}
		ivec_push(&e.out, id);
		after_special = 1;
		i += n;
		frag = i;
	}
	if (frag < len && !e.oom)
		encode_fragment(&e, text + frag, len - frag, after_special);
	if ((flags & TOKENIZE_ADD_EOS) && t->add_eos && t->eos >= 0)
		ivec_push(&e.out, t->eos);

	if (e.oom || e.out.failed) {
		ret = INT32_MIN;
		error("out of memory tokenizing %zu bytes", len);
	} else if (e.out.n > INT32_MAX) {
		ret = INT32_MIN;
		error("text of %zu bytes gives too many tokens", len);
	} else {
		size_t n = e.out.n;
		if (max > 0 && n > 0)
			memcpy(out, e.out.v, (n < (size_t)max ? n : (size_t)max) * sizeof(*out));
		ret = n <= (size_t)(max > 0 ? max : 0) ? (int)n : -(int)n;
	}
	encoder_release(&e);
	return ret;
}

int tokenizer_encode(const struct tokenizer *t, const char *text, size_t len, int flags,
		     int32_t *out, int max)
{
	return encode(t, text, len, flags, 0, NULL, 0, out, max);
}

int tokenizer_encode_ranges(const struct tokenizer *t, const char *text, size_t len, int flags,
			    const size_t (*ranges)[2], size_t n_ranges, int32_t *out, int max)
{
	for (size_t k = 0; k < n_ranges; k++) {
		if (ranges[k][0] > ranges[k][1] || ranges[k][1] > len ||
		    (k && ranges[k][0] < ranges[k - 1][1])) {
			error("bad special-token range %zu: [%zu, %zu) in %zu bytes", k,
			      ranges[k][0], ranges[k][1], len);
			return INT32_MIN;
		}
	}
	return encode(t, text, len, flags | TOKENIZE_PARSE_SPECIAL, 1, ranges, n_ranges, out, max);
}

/* ---- building ----------------------------------------------------------- */

struct pre_name {
	const char *name;
	enum tokenizer_pre pre;
	int ignore_merges; /* llama.cpp's ignore_merges for this name */
	int add_bos;       /* default add_bos for this name */
};

static const struct pre_name pre_names[] = {
	{ "default", TOKENIZER_PRE_DEFAULT, 0, 0 },
	{ "llama3", TOKENIZER_PRE_LLAMA3, 1, 1 },
	{ "llama-v3", TOKENIZER_PRE_LLAMA3, 1, 1 },
	{ "llama-bpe", TOKENIZER_PRE_LLAMA3, 1, 1 },
	{ "falcon3", TOKENIZER_PRE_LLAMA3, 1, 1 },
	{ "falcon-h1", TOKENIZER_PRE_LLAMA3, 1, 1 },
	{ "pixtral", TOKENIZER_PRE_LLAMA3, 1, 1 },
	{ "dbrx", TOKENIZER_PRE_LLAMA3, 0, 0 },
	{ "smaug-bpe", TOKENIZER_PRE_LLAMA3, 0, 0 },
	{ "deepseek-llm", TOKENIZER_PRE_DEEPSEEK_LLM, 0, 0 },
	{ "deepseek-coder", TOKENIZER_PRE_DEEPSEEK_CODER, 0, 0 },
	{ "falcon", TOKENIZER_PRE_FALCON, 0, 0 },
	{ "mpt", TOKENIZER_PRE_MPT, 0, 0 },
	{ "olmo", TOKENIZER_PRE_MPT, 0, 0 },
	{ "jais", TOKENIZER_PRE_MPT, 0, 0 },
	{ "starcoder", TOKENIZER_PRE_STARCODER, 0, 0 },
	{ "refact", TOKENIZER_PRE_STARCODER, 0, 0 },
	{ "command-r", TOKENIZER_PRE_STARCODER, 0, 0 },
	{ "smollm", TOKENIZER_PRE_STARCODER, 0, 0 },
	{ "codeshell", TOKENIZER_PRE_STARCODER, 0, 0 },
	{ "exaone", TOKENIZER_PRE_STARCODER, 0, 0 },
	{ "minerva-7b", TOKENIZER_PRE_STARCODER, 0, 0 },
	{ "gpt-2", TOKENIZER_PRE_GPT2, 0, 0 },
	{ "phi-2", TOKENIZER_PRE_GPT2, 0, 0 },
	{ "jina-es", TOKENIZER_PRE_GPT2, 0, 0 },
	{ "jina-de", TOKENIZER_PRE_GPT2, 0, 0 },
	{ "gigachat", TOKENIZER_PRE_GPT2, 0, 0 },
	{ "jina-v1-en", TOKENIZER_PRE_GPT2, 0, 0 },
	{ "jina-v2-es", TOKENIZER_PRE_GPT2, 0, 0 },
	{ "jina-v2-de", TOKENIZER_PRE_GPT2, 0, 0 },
	{ "jina-v2-code", TOKENIZER_PRE_GPT2, 0, 0 },
	{ "roberta-bpe", TOKENIZER_PRE_GPT2, 0, 0 },
	{ "exaone4", TOKENIZER_PRE_GPT2, 0, 0 },
	{ "qwen2", TOKENIZER_PRE_QWEN2, 0, 0 },
	{ "deepseek-r1-qwen", TOKENIZER_PRE_QWEN2, 0, 0 },
	{ "stablelm2", TOKENIZER_PRE_QWEN2, 0, 0 },
	{ "megrez", TOKENIZER_PRE_QWEN2, 0, 0 },
};

/* Texts that end a turn (llama.cpp's list), in the order tried for eot. */
static const char *const eog_texts[] = {
	"<|eot_id|>",      "<|im_end|>", "<|end|>", "<end_of_turn>",      "<|endoftext|>",
	"<|end_of_text|>", "<EOT>",      "_<EOT>",  "<end_of_utterance>", "<|eom_id|>",
};

void tokenizer_spec_init(struct tokenizer_spec *spec)
{
	memset(spec, 0, sizeof(*spec));
	spec->bos = spec->eos = spec->eot = spec->eom = spec->unk = spec->pad =
		TOKENIZER_ID_DEFAULT;
	spec->add_bos = spec->add_eos = spec->add_space_prefix = -1;
}

static int trie_insert(struct tokenizer *t, const char *s, size_t n, int32_t id)
{
	if (!t->trie) {
		t->trie_alloc = 64;
		t->trie = try_alloc_array((size_t)t->trie_alloc, sizeof(*t->trie));
		if (!t->trie)
			return error("out of memory for special tokens");
		t->trie[0] = (struct trie_node){ -1, -1, -1, 0 };
		t->n_trie = 1;
		for (int i = 0; i < 256; i++)
			t->root_child[i] = -1;
	}
	int32_t node = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		int32_t ch = i == 0 ? t->root_child[c] : t->trie[node].child;
		while (ch >= 0 && t->trie[ch].byte != c)
			ch = t->trie[ch].sibling;
		if (ch < 0) {
			if (t->n_trie == t->trie_alloc) {
				if (t->trie_alloc > INT32_MAX / 2)
					return error("too many special tokens");
				struct trie_node *nt =
					realloc(t->trie, (size_t)t->trie_alloc * 2 * sizeof(*nt));
				if (!nt)
					return error("out of memory for special tokens");
				t->trie = nt;
				t->trie_alloc *= 2;
			}
			ch = t->n_trie++;
			t->trie[ch].child = -1;
			t->trie[ch].id = -1;
			t->trie[ch].byte = c;
			if (i == 0) {
				t->trie[ch].sibling = -1;
				t->root_child[c] = ch;
			} else {
				t->trie[ch].sibling = t->trie[node].child;
				t->trie[node].child = ch;
			}
		}
		node = ch;
	}
	if (t->trie[node].id < 0)
		t->trie[node].id = id;
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* "<0xNN>" -> NN, else -1 */
static int parse_byte_token(const char *s, size_t n)
{
	if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>' || hexval(s[3]) < 0 || hexval(s[4]) < 0)
		return -1;
	return hexval(s[3]) * 16 + hexval(s[4]);
}

/* The decoded bytes of token id appended to sb. */
static void piece_of(const struct tokenizer *t, int32_t id, struct strbuf *sb)
{
	const char *s = t->sym.buf + t->sym.off[id];
	size_t n = t->sym.len[id];
	unsigned a = t->attr[id];

	if (a & (ATTR_CONTROL | ATTR_UNKNOWN | ATTR_USER)) {
		strbuf_add(sb, s, n);
	} else if (a & ATTR_BYTE) {
		int b = parse_byte_token(s, n);
		if (b >= 0)
			strbuf_addch(sb, b);
		else
			strbuf_add(sb, s, n);
	} else if (!(a & ATTR_NORMAL)) {
		/* unused and undefined tokens stand for nothing */
	} else if (t->kind == TOKENIZER_SPM) {
		for (size_t i = 0; i < n; i++) {
			if (i + 3 <= n && !memcmp(s + i, "\xe2\x96\x81", 3)) {
				strbuf_addch(sb, ' ');
				i += 2;
			} else {
				strbuf_addch(sb, s[i]);
			}
		}
	} else {
		for (size_t pos = 0; pos < n;) {
			size_t p0 = pos;
			uint32_t c = unicode_decode_lenient(s, n, &pos);
			int b = unicode_cp_to_byte(c);
			if (b >= 0)
				strbuf_addch(sb, b);
			else
				strbuf_add(sb, s + p0,
					   pos - p0); /* not in the alphabet: as written */
		}
	}
}

static int32_t resolve_id(int64_t given, int32_t def, int32_t n_vocab)
{
	int64_t id = given == TOKENIZER_ID_DEFAULT ? def : given;
	return id >= 0 && id < n_vocab ? (int32_t)id : -1;
}

/*
 * Building a tokenizer is part of loading a model, which a user may quit:
 * the work done (bytes looked at) is counted, and every LOAD_WORK_SLICE of
 * it the cancel flag is read, so a vocabulary of any size stops within
 * about a millisecond of work.
 */
#define LOAD_WORK_SLICE (1u << 16)

struct load_work {
	const atomic_int *cancel; /* NULL: not cancellable */
	uint64_t since;           /* work since the flag was last read */
};

static int load_work_add(struct load_work *w, size_t bytes)
{
	w->since += bytes + 16; /* a token's fixed cost, whatever its length */
	if (w->since < LOAD_WORK_SLICE)
		return 0;
	w->since = 0;
	if (w->cancel && atomic_load(w->cancel))
		return error("loading cancelled");
	return 0;
}

static int parse_merges(struct tokenizer *t, const struct tokenizer_spec *spec, struct load_work *w)
{
	struct strbuf cat = STRBUF_INIT;

	if (spec->n_merges > INT32_MAX)
		return error("too many merges");
	for (uint64_t r = 0; r < spec->n_merges; r++) {
		const char *s = spec->merges[r].data;
		size_t n = spec->merges[r].len;
		if (n > 2 * TOKENIZER_MAX_TOKEN_BYTES + 1) {
			error("merge rule %" PRIu64 " is %zu bytes long (at most %d)", r, n,
			      2 * TOKENIZER_MAX_TOKEN_BYTES + 1);
			goto fail;
		}
		if (load_work_add(w, n) < 0)
			goto fail;
		const char *sp = n > 1 ? memchr(s + 1, ' ', n - 1) : NULL;
		if (!sp)
			continue; /* llama.cpp records it as ("", ""), which never matches */
		size_t ln = (size_t)(sp - s), rn = n - ln - 1;
		int32_t a = symtab_intern(&t->sym, s, ln);
		int32_t b = a < 0 ? -1 : symtab_intern(&t->sym, sp + 1, rn);
		if (b < 0)
			goto fail;
		strbuf_reset(&cat);
		strbuf_add(&cat, s, ln);
		strbuf_add(&cat, sp + 1, rn);
		int32_t ab = symtab_intern(&t->sym, cat.buf, cat.len);
		if (ab < 0 || merge_insert(&t->merges, a, b, (int32_t)r, ab) < 0)
			goto fail;
	}
	strbuf_release(&cat);
	return 0;
fail:
	strbuf_release(&cat);
	return -1;
}

/*
 * SentencePiece merges by text: two adjacent symbols merge when their
 * concatenation is a token.  Index every way a token splits into two tokens
 * at a character boundary, so that merging looks up a pair of ids instead
 * of hashing text.  (A symbol that is not a token, a character missing from
 * the vocabulary, is looked up by text.)
 */
static int index_spm_pairs(struct tokenizer *t, struct load_work *w)
{
	uint64_t *pre = NULL, *pw = NULL; /* [n + 1] prefix hashes, powers of the base */
	size_t cap = 0;
	int rc = -1;
	for (int k = 0; k < 129; k++) {
		char c = (char)k;
		t->small_id[k] = k < 128 ? symtab_find(&t->sym, &c, 1)
					 : symtab_find(&t->sym, "\xe2\x96\x81", 3);
	}
	for (int32_t id = 0; id < t->n_vocab; id++) {
		const char *s = t->sym.buf + t->sym.off[id];
		size_t n = t->sym.len[id];
		if (load_work_add(w, n) < 0)
			goto out;
		/* the character pairs inside the token: where merges may happen */
		for (size_t at = 0, cl; at < n; at += cl) {
			cl = unicode_utf8_len((unsigned char)s[at]);
			if (cl > n - at)
				cl = n - at;
			if (at + cl >= n)
				break;
			size_t cl2 = unicode_utf8_len((unsigned char)s[at + cl]);
			if (cl2 > n - at - cl)
				cl2 = n - at - cl;
			int x = spm_small_index(s + at, cl), y = spm_small_index(s + at + cl, cl2);
			if (x >= 0 && y >= 0)
				t->small_join[x][y / 8] |= (uint8_t)(1u << (y % 8));
			else if (merge_insert(&t->joins, (int32_t)spm_char_key(s + at, cl),
					      (int32_t)spm_char_key(s + at + cl, cl2), 0, 0) < 0)
				goto out;
		}
		if (n < 2)
			continue;
		if (n + 1 > cap) {
			free(pre);
			free(pw);
			cap = n + 1;
			pre = try_alloc_array(cap, sizeof(*pre));
			pw = try_alloc_array(cap, sizeof(*pw));
			if (!pre || !pw) {
				error("out of memory indexing the vocabulary");
				goto out;
			}
		}
		pre[0] = 0;
		pw[0] = 1;
		for (size_t i = 0; i < n; i++) {
			pre[i + 1] =
				poly_reduce(poly_mul(pre[i], poly_base) + (unsigned char)s[i] + 1);
			pw[i + 1] = poly_mul(pw[i], poly_base);
		}
		for (size_t cut = unicode_utf8_len((unsigned char)s[0]); cut < n;
		     cut += unicode_utf8_len((unsigned char)s[cut])) {
			int32_t a = symtab_find_hashed(&t->sym, s, cut, pre[cut], 0);
			if (a < 0)
				continue;
			/* h(s[cut..n)) = h(s) - h(s[0..cut)) * base^(n - cut) */
			uint64_t hb =
				poly_reduce(pre[n] + POLY_P - poly_mul(pre[cut], pw[n - cut]));
			int32_t b = symtab_find_hashed(&t->sym, s + cut, n - cut, hb, 0);
			if (b >= 0 && merge_insert(&t->merges, a, b, 0, id) < 0)
				goto out;
		}
	}
	rc = 0;
out:
	free(pre);
	free(pw);
	return rc;
}

struct tokenizer *tokenizer_new(const struct tokenizer_spec *spec)
{
	struct tokenizer *t = xcalloc(1, sizeof(*t));
	struct strbuf sb = STRBUF_INIT;
	struct load_work w = { spec->cancel, 0 };
	int ignore_merges = 0, pre_add_bos = 0;

	pthread_once(&poly_once, poly_init);

	if (!spec->model || !strcmp(spec->model, "llama")) {
		t->kind = TOKENIZER_SPM;
	} else if (!strcmp(spec->model, "gpt2")) {
		t->kind = TOKENIZER_BPE;
	} else {
		error("unsupported tokenizer model '%s'", spec->model);
		goto fail;
	}
	if (spec->n_tokens == 0 || !spec->tokens) {
		error("the vocabulary is empty");
		goto fail;
	}
	if (spec->n_tokens > INT32_MAX / 2) {
		error("vocabulary of %" PRIu64 " tokens is too large", spec->n_tokens);
		goto fail;
	}

	t->pre = TOKENIZER_PRE_DEFAULT;
	t->pre_name = xstrdup(spec->pre ? spec->pre : "default");
	if (t->kind == TOKENIZER_BPE) {
		size_t i, n = sizeof(pre_names) / sizeof(pre_names[0]);
		for (i = 0; i < n; i++)
			if (spec->pre && !strcmp(spec->pre, pre_names[i].name))
				break;
		if (!spec->pre) {
			t->pre = TOKENIZER_PRE_DEFAULT;
		} else if (i < n) {
			t->pre = pre_names[i].pre;
			ignore_merges = pre_names[i].ignore_merges;
			pre_add_bos = pre_names[i].add_bos;
		} else if (spec->pre_fallback) {
			t->pre = TOKENIZER_PRE_GPT2;
			t->pre_fell_back = 1;
		} else {
			error("unknown pre-tokenizer '%s'", spec->pre);
			goto fail;
		}
		if (spec->n_merges && !spec->merges) {
			error("merges missing");
			goto fail;
		}
	}
	t->ignore_merges = ignore_merges;

	int32_t n = (int32_t)spec->n_tokens;
	t->n_vocab = n;
	t->score = try_alloc_array((size_t)n, sizeof(*t->score));
	t->type = try_alloc_array((size_t)n, 1);
	t->attr = try_alloc_array((size_t)n, 1);
	t->piece_off = try_alloc_array((size_t)n + 1, sizeof(*t->piece_off));
	if (!t->score || !t->type || !t->attr || !t->piece_off) {
		error("out of memory for a vocabulary of %d tokens", n);
		goto fail;
	}
	for (int32_t i = 0; i < n; i++) {
		const char *s = spec->tokens[i].data;
		size_t len = spec->tokens[i].len;
		char empty[32];
		if (len > TOKENIZER_MAX_TOKEN_BYTES) {
			error("token %d is %zu bytes long (at most %d)", i, len,
			      TOKENIZER_MAX_TOKEN_BYTES);
			goto fail;
		}
		if (load_work_add(&w, len) < 0)
			goto fail;
		if (len == 0) { /* llama.cpp names empty tokens so that they stay unique */
			len = (size_t)snprintf(empty, sizeof(empty), "[EMPTY_%d]", i);
			s = empty;
		}
		if (symtab_find(&t->sym, s, len) >= 0) {
			error("duplicate token '%.*s' at id %d", (int)(len > 64 ? 64 : len), s, i);
			goto fail;
		}
		if (symtab_add(&t->sym, s, len) != i)
			goto fail;
		t->score[i] = spec->scores ? spec->scores[i] : 0.0f;
		int32_t ty = spec->types ? spec->types[i] : TOKEN_TYPE_NORMAL;
		if (ty < 0 || ty > TOKEN_TYPE_BYTE)
			ty = TOKEN_TYPE_UNDEFINED;
		t->type[i] = (unsigned char)ty;
		static const unsigned char type_attr[] = {
			[TOKEN_TYPE_UNDEFINED] = 0,
			[TOKEN_TYPE_NORMAL] = ATTR_NORMAL,
			[TOKEN_TYPE_UNKNOWN] = ATTR_UNKNOWN,
			[TOKEN_TYPE_CONTROL] = ATTR_CONTROL,
			[TOKEN_TYPE_USER_DEFINED] = ATTR_USER,
			[TOKEN_TYPE_UNUSED] = ATTR_UNUSED,
			[TOKEN_TYPE_BYTE] = ATTR_BYTE,
		};
		t->attr[i] = type_attr[ty];
	}

	if (t->kind == TOKENIZER_BPE ? parse_merges(t, spec, &w) < 0 : index_spm_pairs(t, &w) < 0)
		goto fail;

	for (int b = 0; b < 256; b++) {
		char enc[4];
		size_t el = unicode_encode(unicode_byte_to_cp((uint8_t)b), enc);
		t->byte_sym[b] = symtab_find(&t->sym, enc, el);
		char hex[7];
		snprintf(hex, sizeof(hex), "<0x%02X>", b);
		int32_t id = symtab_find(&t->sym, hex, 6);
		if (id < 0 || id >= n) {
			char one = (char)b;
			id = symtab_find(&t->sym, &one, 1);
		}
		t->byte_token[b] = id >= 0 && id < n ? id : -1;
	}

	/* special ids and flags, with each model's defaults (as llama.cpp) */
	int spm = t->kind == TOKENIZER_SPM;
	t->bos = resolve_id(spec->bos, spm ? 1 : -1, n);
	t->eos = resolve_id(spec->eos, spm ? 2 : -1, n);
	t->unk = resolve_id(spec->unk, spm ? 0 : -1, n);
	t->pad = resolve_id(spec->pad, -1, n);
	t->eot = resolve_id(spec->eot, -1, n);
	t->eom = resolve_id(spec->eom, -1, n);
	t->add_bos = spec->add_bos >= 0 ? spec->add_bos : (spm ? 1 : pre_add_bos);
	t->add_eos = spec->add_eos >= 0 ? spec->add_eos : 0;
	t->add_space_prefix = spm ? (spec->add_space_prefix >= 0 ? spec->add_space_prefix : 1) : 0;

	/* end of generation: eos, eot, eom and the turn-ending texts */
	for (size_t k = 0; k < sizeof(eog_texts) / sizeof(eog_texts[0]); k++) {
		int32_t id = symtab_find(&t->sym, eog_texts[k], strlen(eog_texts[k]));
		if (id < 0 || id >= n)
			continue;
		if (t->eot < 0 && strcmp(eog_texts[k], "<|eom_id|>"))
			t->eot = id;
		if (t->eom < 0 && !strcmp(eog_texts[k], "<|eom_id|>"))
			t->eom = id;
		t->attr[id] |= ATTR_EOG;
	}
	/* harmony (gpt-oss): <|end|> closes a message, not the turn, which
	 * <|return|> (the answer) or <|call|> (a tool call) end, as llama.cpp
	 * decides for a vocabulary that has both */
	int32_t h_ret = symtab_find(&t->sym, "<|return|>", 10),
		h_call = symtab_find(&t->sym, "<|call|>", 8),
		h_end = symtab_find(&t->sym, "<|end|>", 7);
	if (h_ret >= 0 && h_ret < n && h_call >= 0 && h_call < n) {
		t->attr[h_ret] |= ATTR_EOG;
		t->attr[h_call] |= ATTR_EOG;
		if (h_end >= 0 && h_end < n && h_end != t->eos) {
			t->attr[h_end] &= ~ATTR_EOG;
			if (t->eot == h_end)
				t->eot = h_ret;
		}
	}
	if (t->eos >= 0)
		t->attr[t->eos] |= ATTR_EOG;
	if (t->eot >= 0)
		t->attr[t->eot] |= ATTR_EOG;
	if (t->eom >= 0)
		t->attr[t->eom] |= ATTR_EOG;
	for (int32_t i = 0; i < n; i++) {
		/* llama.cpp makes turn-ending tokens control tokens when they are not */
		if ((t->attr[i] & ATTR_EOG) &&
		    !(t->attr[i] & (ATTR_CONTROL | ATTR_USER | ATTR_UNKNOWN)) && i != t->eos)
			t->attr[i] |= ATTR_CONTROL;
	}

	/* specials for the partition, and the piece of every token */
	for (int32_t i = 0; i < n; i++) {
		if (load_work_add(&w, t->sym.len[i]) < 0)
			goto fail;
		if ((t->attr[i] & (ATTR_CONTROL | ATTR_USER | ATTR_UNKNOWN)) && t->sym.len[i] > 0 &&
		    trie_insert(t, t->sym.buf + t->sym.off[i], t->sym.len[i], i) < 0)
			goto fail;
		t->piece_off[i] = sb.len;
		piece_of(t, i, &sb);
	}
	t->piece_off[n] = sb.len;
	t->piece_buf = strbuf_detach(&sb, NULL);
	return t;

fail:
	strbuf_release(&sb);
	tokenizer_free(t);
	return NULL;
}

void tokenizer_free(struct tokenizer *t)
{
	if (!t)
		return;
	symtab_free(&t->sym);
	free(t->pre_name);
	free(t->score);
	free(t->type);
	free(t->attr);
	free(t->piece_buf);
	free(t->piece_off);
	free(t->merges.slot);
	free(t->joins.slot);
	free(t->trie);
	free(t);
}

/* ---- from a GGUF file --------------------------------------------------- */

static int get_str_opt(const struct gguf *g, const char *key, char **out)
{
	struct gguf_str s;
	*out = NULL;
	if (!gguf_find_kv(g, key))
		return 0;
	if (gguf_get_str(g, key, &s) < 0)
		return -1;
	*out = xstrndup(s.data, s.len);
	if (strlen(*out) != s.len) {
		free(*out);
		*out = NULL;
		return error("'%s' holds a NUL byte", key);
	}
	return 0;
}

static int get_id_opt(const struct gguf *g, const char *key, int64_t *out)
{
	uint32_t v;
	*out = TOKENIZER_ID_DEFAULT;
	if (!gguf_find_kv(g, key))
		return 0;
	if (gguf_get_u32(g, key, &v) < 0)
		return -1;
	*out = v;
	return 0;
}

static int get_flag_opt(const struct gguf *g, const char *key, int *out)
{
	*out = -1;
	if (!gguf_find_kv(g, key))
		return 0;
	return gguf_get_bool(g, key, out);
}

/* A numeric array of n elements converted to float or int32 (copied: the
 * mapping is unaligned). */
static int get_num_array(const struct gguf *g, const char *key, uint64_t n, int want_float,
			 void **out)
{
	enum gguf_vtype type;
	uint64_t count;
	const void *data;
	*out = NULL;
	if (!gguf_find_kv(g, key))
		return 0;
	if (gguf_get_arr(g, key, &type, &count, &data) < 0)
		return -1;
	if (count < n)
		return error("'%s' has %" PRIu64 " entries for %" PRIu64 " tokens", key, count, n);
	if (type != GGUF_TYPE_FLOAT32 && type != GGUF_TYPE_INT32)
		return error("'%s' is an array of %s, not f32 or i32", key, gguf_vtype_name(type));
	void *buf = try_alloc_array(n ? n : 1, 4);
	if (!buf)
		return error("out of memory reading '%s'", key);
	for (uint64_t i = 0; i < n; i++) {
		unsigned char raw[4];
		memcpy(raw, (const unsigned char *)data + i * 4, 4);
		if (want_float) {
			float f;
			if (type == GGUF_TYPE_FLOAT32) {
				memcpy(&f, raw, 4);
			} else {
				int32_t v;
				memcpy(&v, raw, 4);
				f = (float)v;
			}
			((float *)buf)[i] = f;
		} else {
			int32_t v;
			if (type == GGUF_TYPE_INT32) {
				memcpy(&v, raw, 4);
			} else {
				float f;
				memcpy(&f, raw, 4);
				v = (int32_t)f;
			}
			((int32_t *)buf)[i] = v;
		}
	}
	*out = buf;
	return 0;
}

struct tokenizer *tokenizer_open(const struct gguf *g, int pre_fallback)
{
	return tokenizer_open_cancellable(g, pre_fallback, NULL);
}

struct tokenizer *tokenizer_open_cancellable(const struct gguf *g, int pre_fallback,
					     const atomic_int *cancel)
{
	struct tokenizer_spec spec;
	struct tokenizer *t = NULL;
	char *model = NULL, *pre = NULL;
	float *scores = NULL;
	int32_t *types = NULL;
	uint64_t n;

	tokenizer_spec_init(&spec);
	if (!gguf_find_kv(g, "tokenizer.ggml.model")) {
		error("'%s': no tokenizer (tokenizer.ggml.model missing)", gguf_path(g));
		return NULL;
	}
	if (get_str_opt(g, "tokenizer.ggml.model", &model) < 0 ||
	    get_str_opt(g, "tokenizer.ggml.pre", &pre) < 0)
		goto out;
	if (!gguf_find_kv(g, "tokenizer.ggml.tokens")) {
		error("no tokenizer vocabulary (tokenizer.ggml.tokens missing)");
		goto out;
	}
	if (gguf_get_arr_str(g, "tokenizer.ggml.tokens", &spec.tokens, &n) < 0)
		goto out;
	spec.n_tokens = n;
	spec.model = model;
	spec.pre = pre;
	spec.pre_fallback = pre_fallback;
	spec.cancel = cancel;
	if (get_num_array(g, "tokenizer.ggml.scores", n, 1, (void **)&scores) < 0 ||
	    get_num_array(g, "tokenizer.ggml.token_type", n, 0, (void **)&types) < 0)
		goto out;
	spec.scores = scores;
	spec.types = types;
	if (model && !strcmp(model, "gpt2")) {
		if (!gguf_find_kv(g, "tokenizer.ggml.merges")) {
			error("no tokenizer merges (tokenizer.ggml.merges missing)");
			goto out;
		}
		if (gguf_get_arr_str(g, "tokenizer.ggml.merges", &spec.merges, &spec.n_merges) < 0)
			goto out;
	}
	if (get_id_opt(g, "tokenizer.ggml.bos_token_id", &spec.bos) < 0 ||
	    get_id_opt(g, "tokenizer.ggml.eos_token_id", &spec.eos) < 0 ||
	    get_id_opt(g, "tokenizer.ggml.eot_token_id", &spec.eot) < 0 ||
	    get_id_opt(g, "tokenizer.ggml.eom_token_id", &spec.eom) < 0 ||
	    get_id_opt(g, "tokenizer.ggml.unknown_token_id", &spec.unk) < 0 ||
	    get_id_opt(g, "tokenizer.ggml.padding_token_id", &spec.pad) < 0 ||
	    get_flag_opt(g, "tokenizer.ggml.add_bos_token", &spec.add_bos) < 0 ||
	    get_flag_opt(g, "tokenizer.ggml.add_eos_token", &spec.add_eos) < 0 ||
	    get_flag_opt(g, "tokenizer.ggml.add_space_prefix", &spec.add_space_prefix) < 0)
		goto out;
	t = tokenizer_new(&spec);
out:
	if (!t && !strstr(error_message(), gguf_path(g)))
		error_prefix("'%s': ", gguf_path(g));
	free(model);
	free(pre);
	free(scores);
	free(types);
	return t;
}

/* ---- accessors ---------------------------------------------------------- */

const char *tokenizer_piece(const struct tokenizer *t, int32_t id, size_t *len)
{
	if (id < 0 || id >= t->n_vocab) {
		*len = 0;
		return NULL;
	}
	*len = t->piece_off[id + 1] - t->piece_off[id];
	return t->piece_buf + t->piece_off[id];
}

const char *tokenizer_text(const struct tokenizer *t, int32_t id, size_t *len)
{
	if (id < 0 || id >= t->n_vocab) {
		*len = 0;
		return NULL;
	}
	*len = t->sym.len[id];
	return t->sym.buf + t->sym.off[id];
}

int32_t tokenizer_find(const struct tokenizer *t, const char *s, size_t n)
{
	int32_t id = symtab_find(&t->sym, s, n);
	return id < t->n_vocab ? id : -1;
}

int32_t tokenizer_n_vocab(const struct tokenizer *t)
{
	return t->n_vocab;
}
enum tokenizer_kind tokenizer_kind(const struct tokenizer *t)
{
	return t->kind;
}
enum tokenizer_pre tokenizer_pre_type(const struct tokenizer *t)
{
	return t->pre;
}
const char *tokenizer_pre_name(const struct tokenizer *t)
{
	return t->pre_name;
}
int tokenizer_pre_fell_back(const struct tokenizer *t)
{
	return t->pre_fell_back;
}
int32_t tokenizer_bos(const struct tokenizer *t)
{
	return t->bos;
}
int32_t tokenizer_eos(const struct tokenizer *t)
{
	return t->eos;
}
int32_t tokenizer_eot(const struct tokenizer *t)
{
	return t->eot;
}
int32_t tokenizer_pad(const struct tokenizer *t)
{
	return t->pad;
}
int32_t tokenizer_unk(const struct tokenizer *t)
{
	return t->unk;
}
int tokenizer_add_bos(const struct tokenizer *t)
{
	return t->add_bos && t->bos >= 0;
}
int tokenizer_add_eos(const struct tokenizer *t)
{
	return t->add_eos && t->eos >= 0;
}
enum token_type tokenizer_token_type(const struct tokenizer *t, int32_t id)
{
	return id >= 0 && id < t->n_vocab ? (enum token_type)t->type[id] : TOKEN_TYPE_UNDEFINED;
}
int tokenizer_is_control(const struct tokenizer *t, int32_t id)
{
	return id >= 0 && id < t->n_vocab && (t->attr[id] & (ATTR_CONTROL | ATTR_UNKNOWN));
}
int tokenizer_is_eog(const struct tokenizer *t, int32_t id)
{
	return id >= 0 && id < t->n_vocab && (t->attr[id] & ATTR_EOG);
}

/* ---- streaming decoder -------------------------------------------------- */

struct tokenizer_decoder {
	const struct tokenizer *t;
	int flags;
	unsigned char held[4]; /* an incomplete UTF-8 sequence waiting for more bytes */
	size_t n_held;
};

struct tokenizer_decoder *tokenizer_decoder_new(const struct tokenizer *t, int flags)
{
	struct tokenizer_decoder *d = xcalloc(1, sizeof(*d));
	d->t = t;
	d->flags = flags;
	return d;
}

void tokenizer_decoder_free(struct tokenizer_decoder *d)
{
	free(d);
}

static const char replacement[] = "\xef\xbf\xbd";

/* Feed bytes; append complete characters, keep an incomplete tail. */
static size_t decoder_feed(struct tokenizer_decoder *d, const unsigned char *p, size_t n,
			   struct strbuf *out)
{
	size_t before = out->len;
	size_t i = 0;
	while (i < n || d->n_held) {
		unsigned char tmp[4];
		size_t have = 0;
		/* the held bytes, then as many new ones as a sequence can use */
		memcpy(tmp, d->held, d->n_held);
		have = d->n_held;
		size_t take = 0;
		while (have < 4 && i + take < n)
			tmp[have++] = p[i + take++];
		if (have == 0)
			break;
		uint32_t cp;
		size_t bad;
		int r = unicode_decode_strict(tmp, have, &cp, &bad);
		if (r == 0) { /* incomplete: hold everything (fewer than 4 bytes) */
			memcpy(d->held, tmp, have);
			d->n_held = have;
			i += take;
			break;
		}
		size_t used = r > 0 ? (size_t)r : bad;
		if (r > 0)
			strbuf_add(out, tmp, used);
		else
			strbuf_add(out, replacement, 3);
		/* consume `used` bytes: first from held, then from p */
		if (used >= d->n_held) {
			i += used - d->n_held;
			d->n_held = 0;
		} else {
			memmove(d->held, d->held + used, d->n_held - used);
			d->n_held -= used;
		}
	}
	return out->len - before;
}

int tokenizer_decoder_push(struct tokenizer_decoder *d, int32_t id, struct strbuf *out)
{
	const struct tokenizer *t = d->t;
	size_t n;
	if (id < 0 || id >= t->n_vocab)
		return error("token id %d out of range (vocabulary of %d)", id, t->n_vocab);
	if ((t->attr[id] & (ATTR_CONTROL | ATTR_UNKNOWN)) && !(d->flags & TOKENIZER_DECODE_SPECIAL))
		return 0;
	const char *p = tokenizer_piece(t, id, &n);
	return (int)decoder_feed(d, (const unsigned char *)p, n, out);
}

int tokenizer_decoder_flush(struct tokenizer_decoder *d, struct strbuf *out)
{
	if (!d->n_held)
		return 0;
	d->n_held = 0;
	strbuf_add(out, replacement, 3);
	return 3;
}
