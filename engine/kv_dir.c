/* The folder of saved KV states: names, atomic saves, stale temporaries and LRU eviction. */
#include "kv_dir.h"

#include "engine.h"
#include "log.h"
#include "report.h"
#include "util.h"
#include "xalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * DESIGN
 * One file per session and model key, SESSION-KEY.kv, so that a session
 * held with two models keeps a state for each and no file is ever shared
 * by two caches of different shapes.  Several palaver processes may share
 * the folder: every change is a rename or an unlink, both atomic, and a
 * reader that opened a file keeps it even if another process evicts it.
 *
 * A save writes into an unnamed file (O_TMPFILE), so that a process killed
 * mid-write leaves nothing behind; only once it is complete and synced does
 * it get a temporary name (linkat through /proc/self/fd) and is renamed
 * over the old state.  Where either step is not available the writer falls
 * back to a named temporary, .NAME.PID.tmp; one left by a dead process (a
 * SIGKILL between creating and renaming it) is removed by the next save or
 * listing in the folder.
 *
 * Eviction is least recently used by mtime: a save writes the file and a
 * restore touches it.  Before a save, the other states are removed oldest
 * first until they and the new one fit the cap, which also frees the space
 * the new file needs on a nearly full disk.
 */

#define KEY_HEX 16

int kv_dir_session_ok(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n >= ENGINE_SESSION_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return 0;
	}
	return 1;
}

void kv_dir_file(struct strbuf *out, const char *dir, const char *session, uint64_t key)
{
	strbuf_reset(out);
	strbuf_addf(out, "%s/%s-%016llx.kv", dir, session, (unsigned long long)key);
}

/* Is name SESSION-KEY.kv?  Then 1 and the session in session[]. */
static int parse_name(const char *name, char session[ENGINE_SESSION_MAX])
{
	size_t n = strlen(name);
	if (n < KEY_HEX + 5 || strcmp(name + n - 3, ".kv") || name[n - 3 - KEY_HEX - 1] != '-')
		return 0;
	for (size_t i = n - 3 - KEY_HEX; i < n - 3; i++)
		if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f')))
			return 0;
	size_t sl = n - 3 - KEY_HEX - 1;
	if (sl < 1 || sl >= ENGINE_SESSION_MAX)
		return 0;
	memcpy(session, name, sl);
	session[sl] = '\0';
	return kv_dir_session_ok(session);
}

/* A named temporary, .NAME.PID.tmp: the writer's pid, or 0 when name is not one. */
static long temp_pid(const char *name)
{
	size_t n = strlen(name);
	if (name[0] != '.' || n < 8 || strcmp(name + n - 4, ".tmp"))
		return 0;
	const char *end = name + n - 4, *p = end;
	while (p > name && p[-1] >= '0' && p[-1] <= '9')
		p--;
	if (p == end || p[-1] != '.' || end - p > 9)
		return 0;
	return strtol(p, NULL, 10);
}

/* One state file found by scan(). */
struct entry {
	char *name;
	char session[ENGINE_SESSION_MAX];
	uint64_t bytes;
	int64_t mtime_ns;
};

static void entries_free(struct entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(e[i].name);
	free(e);
}

/*
 * The state files in dir (removing temporaries of dead writers on the
 * way).  A missing folder has none.  0 or -1 (error()).
 */
static int scan(const char *dir, struct entry **out, size_t *n_out)
{
	struct entry *e = NULL;
	size_t n = 0, alloc = 0;
	*out = NULL;
	*n_out = 0;
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : error("cannot read '%s': %s", dir, strerror(errno));
	struct dirent *de;
	while ((errno = 0, de = readdir(d)) != NULL) {
		struct stat st;
		char session[ENGINE_SESSION_MAX];
		long pid = temp_pid(de->d_name);
		if (pid > 0) {
			/* EPERM: alive, someone else's */
			if (kill((pid_t)pid, 0) < 0 && errno == ESRCH)
				unlinkat(dirfd(d), de->d_name, 0);
			continue;
		}
		if (!parse_name(de->d_name, session) ||
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		if (n == alloc) {
			alloc = alloc ? 2 * alloc : 16;
			e = xrealloc_array(e, alloc, sizeof(*e));
		}
		e[n].name = xstrdup(de->d_name);
		memcpy(e[n].session, session, sizeof(session));
		e[n].bytes = (uint64_t)st.st_size;
		e[n].mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
		n++;
	}
	int rc = errno ? error("cannot read '%s': %s", dir, strerror(errno)) : 0;
	closedir(d);
	if (rc < 0) {
		entries_free(e, n);
		return -1;
	}
	*out = e;
	*n_out = n;
	return 0;
}

static int by_mtime_desc(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	return x->mtime_ns < y->mtime_ns ? 1 : x->mtime_ns > y->mtime_ns ? -1 : 0;
}

/* Remove the least recently used states but `keep` until the rest take at most budget. */
static void evict(const char *dir, uint64_t budget, const char *keep)
{
	struct entry *e;
	size_t n;
	uint64_t total = 0;
	if (scan(dir, &e, &n) < 0) {
		error_clear(); /* nothing evicted: the save may still fit */
		return;
	}
	if (n) /* qsort wants an array, even of nothing */
		qsort(e, n, sizeof(*e), by_mtime_desc);
	for (size_t i = 0; i < n; i++)
		if (strcmp(e[i].name, keep))
			total += e[i].bytes;
	struct strbuf p = STRBUF_INIT;
	for (size_t i = n; i-- > 0 && total > budget;) {
		if (!strcmp(e[i].name, keep))
			continue;
		strbuf_reset(&p);
		strbuf_addf(&p, "%s/%s", dir, e[i].name);
		if (unlink(p.buf) == 0 || errno == ENOENT) {
			total -= e[i].bytes;
			log_info("kv state '%s' evicted (kv_cache.max_disk)", p.buf);
		}
	}
	strbuf_release(&p);
	entries_free(e, n);
}

static void sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	/* the rename is done; a file system that cannot sync a folder loses
	 * at most the new name on a power cut, and the old state stays valid */
	(void)fsync(fd);
	close(fd);
}

/* Write and sync the state into fd.  0 or -1. */
static int write_synced(int fd, const struct kv_cache *kv, const struct kv_state_id *id,
			int (*stop)(void *), void *ud)
{
	if (kv_state_write(fd, kv, id, stop, ud) < 0)
		return -1;
	if (fsync(fd) < 0)
		return error("cannot write the KV state: %s", strerror(errno));
	return 0;
}

int kv_dir_save(const char *dir, const char *session, uint64_t key, const struct kv_cache *kv,
		const struct kv_state_id *id, uint64_t cap, int (*stop)(void *), void *ud,
		struct strbuf *path, uint64_t *bytes)
{
	struct strbuf tmp = STRBUF_INIT;
	char a[32], b[32];
	int rc = -1;

	if (!kv_dir_session_ok(session))
		return error("invalid session id '%s'", session);
	kv_dir_file(path, dir, session, key);
	if (mkdir_parents(path->buf) < 0)
		return -1;
	uint64_t size = kv_state_size(kv);
	if (cap && size > cap)
		return error("the state (%s) is larger than kv_cache.max_disk (%s)",
			     format_size(a, sizeof(a), size), format_size(b, sizeof(b), cap));
	const char *base = path->buf + strlen(dir) + 1;
	/* the scan inside also removes temporaries of dead writers */
	evict(dir, cap ? cap - size : UINT64_MAX, base);
	strbuf_addf(&tmp, "%s/.%s.%ld.tmp", dir, base, (long)getpid());

	/* an unnamed file first: a crash while writing leaves nothing */
	int fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600), named = 0;
	if (fd >= 0) {
		char proc[64];
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
		if (write_synced(fd, kv, id, stop, ud) < 0)
			goto out;
		/* a file of that name carries our pid: a dead namesake's leftover */
		unlink(tmp.buf);
		if (linkat(AT_FDCWD, proc, AT_FDCWD, tmp.buf, AT_SYMLINK_FOLLOW) < 0) {
			/* no /proc: write it again under a name */
			close(fd);
			fd = -1;
		} else {
			named = 1;
		}
	}
	if (fd < 0) {
		unlink(tmp.buf);
		fd = open(tmp.buf, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0) {
			error("cannot create '%s': %s", tmp.buf, strerror(errno));
			goto out;
		}
		named = 1;
		if (write_synced(fd, kv, id, stop, ud) < 0)
			goto out;
	}
	/* complete and synced: an unnamed descriptor open means "not done yet" */
	close(fd);
	fd = -1;
	if (rename(tmp.buf, path->buf) < 0) {
		error("cannot rename '%s' to '%s': %s", tmp.buf, path->buf, strerror(errno));
		goto out;
	}
	named = 0;
	sync_dir(dir);
	*bytes = size;
	rc = 0;
out:
	if (rc < 0 && !strstr(error_message(), path->buf) && !strstr(error_message(), tmp.buf))
		error_prefix("'%s': ", path->buf);
	if (fd >= 0)
		close(fd);
	if (named)
		unlink(tmp.buf);
	strbuf_release(&tmp);
	return rc;
}

void kv_dir_touch(const char *path)
{
	/* a file we cannot touch is merely evicted earlier */
	(void)utimensat(AT_FDCWD, path, NULL, 0);
}

/* ---- engine.h: listing and removing ---------------------------------------------------- */

int engine_kv_list(const char *dir, struct engine_kv_file **out, size_t *n_out)
{
	struct entry *e;
	size_t n;
	*out = NULL;
	*n_out = 0;
	if (scan(dir, &e, &n) < 0)
		return -1;
	if (n) /* qsort wants an array, even of nothing */
		qsort(e, n, sizeof(*e), by_mtime_desc);
	struct engine_kv_file *f = xcalloc(n ? n : 1, sizeof(*f));
	for (size_t i = 0; i < n; i++) {
		struct strbuf p = STRBUF_INIT;
		struct kv_state_info info;
		strbuf_addf(&p, "%s/%s", dir, e[i].name);
		memcpy(f[i].session, e[i].session, sizeof(f[i].session));
		f[i].bytes = e[i].bytes;
		f[i].used_ms = e[i].mtime_ns / 1000000;
		if (kv_state_peek(p.buf, &info) == 0) {
			f[i].tokens = info.n_tokens;
			snprintf(f[i].model, sizeof(f[i].model), "%s", info.model_name);
		} else {
			f[i].tokens = -1;
			error_clear();
		}
		f[i].path = strbuf_detach(&p, NULL);
	}
	entries_free(e, n);
	*out = f;
	*n_out = n;
	return 0;
}

void engine_kv_list_free(struct engine_kv_file *f, size_t n)
{
	for (size_t i = 0; f && i < n; i++)
		free(f[i].path);
	free(f);
}

int engine_kv_remove(const char *dir, const char *session)
{
	struct entry *e;
	size_t n;
	int removed = 0, rc = 0;
	if (scan(dir, &e, &n) < 0)
		return -1;
	struct strbuf p = STRBUF_INIT;
	for (size_t i = 0; i < n; i++) {
		if (session && strcmp(e[i].session, session))
			continue;
		strbuf_reset(&p);
		strbuf_addf(&p, "%s/%s", dir, e[i].name);
		if (unlink(p.buf) == 0)
			removed++;
		else if (errno != ENOENT && rc == 0)
			rc = error("cannot remove '%s': %s", p.buf, strerror(errno));
	}
	strbuf_release(&p);
	entries_free(e, n);
	return rc < 0 ? -1 : removed;
}
