/* Read-ahead of mapped weights by layer: page ranges per layer and a helper thread that madvises them. */
#ifndef PALAVER_READAHEAD_H
#define PALAVER_READAHEAD_H

#include <stdint.h>

struct gguf;

/*
 * The tensors of a GGUF mapping sorted into groups: group i (0 <= i <
 * n_layer) holds every tensor named "blk.i.*", group n_layer (the "output"
 * group) every other tensor except token_embd.weight, which joins it only
 * when tied (the output matrix reads all of it; otherwise a pass reads a
 * few rows).  Each group is a sorted list of page-aligned ranges inside the
 * mapping, adjacent or overlapping extents merged, so that one group costs
 * few system calls.
 *
 * readahead_advance() is asynchronous: it tells a helper thread where the
 * compute threads are, and the helper reads the next group ahead: it
 * checks with mincore() which pages are missing and asks the kernel to
 * read those (madvise MADV_WILLNEED, in chunks no larger than the kernel
 * reads per call), and on a cold start goes on to the groups after it
 * (see readahead.c).  On a resident group the helper's
 * cost is one mincore call per range, and the caller's is a mutex and a
 * condition signal.  Under memory pressure (pages it read evicted before
 * their use) the helper pauses for a while: see readahead.c.
 *
 * A mixture of experts' 3-D tensors (blk.N.*_exps.*, one matrix per expert
 * along ne[2]) are left out of the groups: a token reads only the experts
 * its router chose, so reading a whole layer ahead would read mostly
 * experts nobody uses.  Instead the forward pass tells the helper which
 * experts a layer needs as soon as its router has run
 * (readahead_experts()), and the helper reads those, all of them at once,
 * while the compute threads start on the first.
 */

struct readahead_range {
	uintptr_t start; /* page-aligned address in the mapping */
	uintptr_t end;   /* page-aligned, exclusive; start < end */
};

struct readahead;

/* Build the table for g with n_layer layer groups.  tied: token_embd is
 * also the output matrix.  skip (per tensor index, may be NULL): tensors
 * left out, e.g. repacked into a copy the forward pass reads instead.
 * NULL with error() on out of memory. */
struct readahead *readahead_create(const struct gguf *g, int n_layer, int tied,
				   const unsigned char *skip);
/* Stops and joins the helper thread if it runs. */
void readahead_free(struct readahead *ra);

int readahead_n_groups(const struct readahead *ra); /* n_layer + 1 */
/* The ranges of group i (sorted, disjoint, not touching); returns their count. */
int readahead_ranges(const struct readahead *ra, int group, const struct readahead_range **out);

/* Start the helper thread: 1; 0 when declined because the groups' weights
 * (a mixture's experts left out) exceed the memory available (read-ahead would then evict the layers about to
 * be used: see readahead.c); -1 with error(). */
int readahead_start(struct readahead *ra);
/* Bytes of memory this process may fill, roughly: MemAvailable, lowered
 * to the memory cgroup's limit; 0 when unknown. */
uint64_t readahead_memory_available(void);
/* The memory available that readahead_start() saw (0 = unknown), and the
 * bytes of all ranges, for messages. */
uint64_t readahead_memory(const struct readahead *ra);
uint64_t readahead_weights(const struct readahead *ra);
/* The compute threads start layer cur (0 .. n_layer-1), or a pass (-1):
 * the helper reads the next group ahead (after the last layer the output
 * group, then layer 0).  Ignored when the helper is not started. */
void readahead_advance(struct readahead *ra, int cur);
/* Count group i's pages resident now (mincore, on the caller's thread):
 * adds to *resident and *pages.  0, or -1 when mincore failed. */
int readahead_resident(struct readahead *ra, int group, uint64_t *resident, uint64_t *pages);
/* Layer `layer`'s router chose experts ids[0 .. n-1] (repeats allowed):
 * the helper reads their matrices' missing pages.  Asynchronous like
 * readahead_advance(); an expert found resident once is not checked again
 * (the caller then skips the helper altogether).  Ignored when the helper
 * is not started or the layer has no expert tensors in the mapping. */
void readahead_experts(struct readahead *ra, int layer, const int32_t *ids, int n);
/* Experts per mixture layer (0: none in the mapping) and the bytes of one
 * expert's matrices in `layer` (page-rounded ranges, as read). */
int readahead_n_experts(const struct readahead *ra);
uint64_t readahead_expert_bytes(const struct readahead *ra, int layer);
/* Count the pages of expert e of `layer` resident now (mincore), into
 * *resident and *pages; 0, or -1 when mincore failed. */
int readahead_expert_resident(struct readahead *ra, int layer, int e, uint64_t *resident,
			      uint64_t *pages);
/* Pages the helper found missing and asked the kernel for, since creation. */
uint64_t readahead_pages_requested(struct readahead *ra);
/* Times the helper found pages it had read evicted before their use and
 * paused (memory pressure), since creation. */
uint64_t readahead_evictions(struct readahead *ra);

#endif
