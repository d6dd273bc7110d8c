#pragma once
// berth::detail::sqlite::wal_coalescing_vfs — a SQLite VFS shim over the default VFS that writes a
// transaction's WAL frames with one write(2) instead of two per frame. Not a public API.
//
// Why: SQLite writes each WAL frame as two pwrite calls (the 24-byte frame header, then the page).
// A lease pair commits ~27 frames (the lease row, upstream's indexes, two activity events and
// theirs), and on a virtual machine's ext4 a pwrite costs ~3-4 µs whatever its size: those ~54
// calls were most of the pair's time (docs/stores.md). One pwrite of the same bytes costs ~5 µs.
//
// How: writes to a WAL file are held in a buffer while they extend it contiguously and are issued
// as one write when anything else touches the file (read, sync, truncate, size, file control,
// close), when a write is not contiguous, and — the point that makes it safe — together with the
// page of a *commit* frame. SQLite publishes a transaction (writes the wal-index header that other
// connections and processes read) only after the commit frame's xWrite calls have returned, and it
// writes nothing to the WAL in between, so no connection can ever be told about a frame that is
// still in the buffer: at a process crash, what was lost was never committed, as with the default
// VFS. A commit frame is a frame header whose "database size after commit" field is non-zero.
//
// The case analysis, against sqlite3WalFrames (wal.c, unchanged from 3.7 to 3.4x):
//   - walWriteOneFrame writes a frame's header at the offset where the previous write ended, then
//     its page right after. A commit header contiguous with the last write is held, and its page
//     flushes the buffer with it.
//   - walRewriteChecksums (a page rewritten within one transaction) rewrites frame headers at
//     earlier offsets, each after an xRead (which flushes). Its last header is the commit frame's,
//     with no page after it: it is not contiguous with the last write, so it is written at once.
//     A commit header is therefore held only when its page is certain to follow.
//   - pages rewritten in place and the frames of a cache spill (isCommit = 0) are never published
//     by themselves: they are buffered and go out with the transaction's commit frame, or earlier.
//   - without SQLITE_IOCAP_POWERSAFE_OVERWRITE, synchronous=FULL pads commits to a sector and may
//     split a page's write around an fsync: the shim then passes every write through.
// Under synchronous=FULL the WAL's xSync comes after the commit frame, and it flushes first anyway.
//
// Only the files SQLite opens with SQLITE_OPEN_WAL go through the shim; the database file, its
// shared-memory index and locks are the default VFS's own objects. Other processes (with or
// without berth) see the same bytes in the same order; the on-disk format is SQLite's.

#include <sqlite3.h>  // sqlite3_vfs, sqlite3_file, sqlite3_io_methods

#include <cstddef>  // std::size_t
#include <cstring>  // std::memcpy
#include <new>      // placement new

namespace berth::detail::sqlite {

namespace wal_coalescing {

inline constexpr char const* vfs_name = "berth-wal-coalescing";
inline constexpr int frame_header_size = 24;         // WAL_FRAME_HDRSIZE in wal.c
inline constexpr std::size_t max_buffer = 4u << 20;  // flush before holding more than this
inline constexpr std::size_t keep_capacity = 256u << 10;  // free a larger buffer once it is flushed
// The unix VFS writes at most 128 KiB - 1 bytes per call (seekAndWriteFd masks the length with
// 0x1ffff) and reports a longer write as SQLITE_FULL: larger flushes go in pieces of this size.
inline constexpr std::size_t max_write = 0x1f000;

/// The shim's state for one open WAL file; SQLite allocates it (szOsFile) and the default VFS's
/// own file object follows it in the same allocation.
struct wal_file {
    sqlite3_file base;         // pMethods: &methods() below
    sqlite3_file* real;        // the default VFS's file
    unsigned char* buffer;     // sqlite3_malloc'd; holds [offset, offset + length)
    std::size_t length;
    std::size_t capacity;
    sqlite3_int64 offset;
    sqlite3_int64 last_end;    // where SQLite's last write to this file ended (-1: none yet)
    bool commit_header_last;   // SQLite's last write was a commit frame's header
};

inline constexpr std::size_t real_file_offset = (sizeof(wal_file) + 7) & ~std::size_t{7};

struct vfs_state {
    sqlite3_vfs vfs;
    sqlite3_vfs* base;
};

[[nodiscard]] inline vfs_state& state_of(sqlite3_vfs* v) noexcept { return *reinterpret_cast<vfs_state*>(v); }
[[nodiscard]] inline sqlite3_vfs* base_of(sqlite3_vfs* v) noexcept { return state_of(v).base; }
[[nodiscard]] inline wal_file& as_wal(sqlite3_file* f) noexcept { return *reinterpret_cast<wal_file*>(f); }

/// Writes the buffer out. The buffer is empty afterwards, whether or not the write succeeded: the
/// error goes to the SQLite call that caused the flush, which fails the transaction the buffered
/// frames belonged to (every frame of an earlier transaction was flushed with its commit frame).
[[nodiscard]] inline int flush(wal_file& f) noexcept {
    int rc = SQLITE_OK;
    for (std::size_t done = 0; done < f.length && rc == SQLITE_OK; done += max_write) {
        auto const n = f.length - done < max_write ? f.length - done : max_write;
        rc = f.real->pMethods->xWrite(f.real, f.buffer + done, static_cast<int>(n),
                                      f.offset + static_cast<sqlite3_int64>(done));
    }
    f.length = 0;
    if (f.capacity > keep_capacity) {  // a large transaction's buffer is not kept for the small ones
        sqlite3_free(f.buffer);
        f.buffer = nullptr;
        f.capacity = 0;
    }
    return rc == SQLITE_OK ? SQLITE_OK : (rc & 0xff) == SQLITE_FULL ? SQLITE_FULL : SQLITE_IOERR_WRITE;
}

/// Appends to the buffer (which is empty or ends at `off`). False when memory is short.
[[nodiscard]] inline bool append(wal_file& f, void const* data, int amount, sqlite3_int64 off) noexcept {
    auto const n = static_cast<std::size_t>(amount);
    if (f.length + n > f.capacity) {
        std::size_t cap = f.capacity ? f.capacity : 64 * 1024;
        while (cap < f.length + n) cap *= 2;
        auto* grown = static_cast<unsigned char*>(sqlite3_realloc64(f.buffer, cap));
        if (!grown) return false;
        f.buffer = grown;
        f.capacity = cap;
    }
    if (f.length == 0) f.offset = off;
    std::memcpy(f.buffer + f.length, data, n);
    f.length += n;
    return true;
}

[[nodiscard]] inline bool is_commit_header(void const* data, int amount) noexcept {
    if (amount != frame_header_size) return false;
    auto const* p = static_cast<unsigned char const*>(data);
    return (p[4] | p[5] | p[6] | p[7]) != 0;  // big-endian database size after commit; 0 = not a commit
}

inline int write(sqlite3_file* file, void const* data, int amount, sqlite3_int64 off) noexcept {
    auto& f = as_wal(file);
    bool const contiguous = off == f.last_end;
    bool const page_of_commit = f.commit_header_last && contiguous;
    bool const commit_header = is_commit_header(data, amount);
    f.last_end = off + amount;
    f.commit_header_last = commit_header;

    bool const defer = (f.real->pMethods->xDeviceCharacteristics(f.real) & SQLITE_IOCAP_POWERSAFE_OVERWRITE) != 0 &&
                       (!commit_header || contiguous) &&
                       f.length + static_cast<std::size_t>(amount) <= max_buffer;
    if (f.length != 0 && (!defer || off != f.offset + static_cast<sqlite3_int64>(f.length))) {
        if (int const rc = flush(f); rc != SQLITE_OK) return rc;
    }
    if (defer && append(f, data, amount, off)) return page_of_commit ? flush(f) : SQLITE_OK;
    // Written now: a commit header that no page may follow, a write too large to hold, no memory,
    // or a device whose sector writes are not power-safe. The buffer is already empty.
    if (int const rc = flush(f); rc != SQLITE_OK) return rc;
    return f.real->pMethods->xWrite(f.real, data, amount, off);
}

inline int close(sqlite3_file* file) noexcept {
    auto& f = as_wal(file);
    int const flushed = flush(f);
    int const closed = f.real->pMethods->xClose(f.real);
    sqlite3_free(f.buffer);
    f.buffer = nullptr;
    return flushed != SQLITE_OK ? flushed : closed;
}

inline int read(sqlite3_file* file, void* data, int amount, sqlite3_int64 off) noexcept {
    auto& f = as_wal(file);
    if (int const rc = flush(f); rc != SQLITE_OK) return rc;
    return f.real->pMethods->xRead(f.real, data, amount, off);
}

inline int truncate(sqlite3_file* file, sqlite3_int64 size) noexcept {
    auto& f = as_wal(file);
    if (int const rc = flush(f); rc != SQLITE_OK) return rc;
    return f.real->pMethods->xTruncate(f.real, size);
}

inline int sync(sqlite3_file* file, int flags) noexcept {
    auto& f = as_wal(file);
    if (int const rc = flush(f); rc != SQLITE_OK) return rc;
    return f.real->pMethods->xSync(f.real, flags);
}

inline int file_size(sqlite3_file* file, sqlite3_int64* size) noexcept {
    auto& f = as_wal(file);
    if (int const rc = flush(f); rc != SQLITE_OK) return rc;
    return f.real->pMethods->xFileSize(f.real, size);
}

inline int lock(sqlite3_file* file, int level) noexcept {
    auto& f = as_wal(file);
    return f.real->pMethods->xLock(f.real, level);
}
inline int unlock(sqlite3_file* file, int level) noexcept {
    auto& f = as_wal(file);
    return f.real->pMethods->xUnlock(f.real, level);
}
inline int check_reserved_lock(sqlite3_file* file, int* out) noexcept {
    auto& f = as_wal(file);
    return f.real->pMethods->xCheckReservedLock(f.real, out);
}

inline int file_control(sqlite3_file* file, int op, void* arg) noexcept {
    auto& f = as_wal(file);
    if (int const rc = flush(f); rc != SQLITE_OK) return rc;
    return f.real->pMethods->xFileControl(f.real, op, arg);
}

inline int sector_size(sqlite3_file* file) noexcept {
    auto& f = as_wal(file);
    return f.real->pMethods->xSectorSize(f.real);
}
inline int device_characteristics(sqlite3_file* file) noexcept {
    auto& f = as_wal(file);
    return f.real->pMethods->xDeviceCharacteristics(f.real);
}

// A WAL file has no shared memory and is never memory-mapped; these exist for completeness.
inline int shm_map(sqlite3_file* file, int region, int size, int extend, void volatile** out) noexcept {
    auto& f = as_wal(file);
    return f.real->pMethods->xShmMap(f.real, region, size, extend, out);
}
inline int shm_lock(sqlite3_file* file, int offset, int n, int flags) noexcept {
    auto& f = as_wal(file);
    return f.real->pMethods->xShmLock(f.real, offset, n, flags);
}
inline void shm_barrier(sqlite3_file* file) noexcept {
    auto& f = as_wal(file);
    f.real->pMethods->xShmBarrier(f.real);
}
inline int shm_unmap(sqlite3_file* file, int delete_flag) noexcept {
    auto& f = as_wal(file);
    return f.real->pMethods->xShmUnmap(f.real, delete_flag);
}
inline int fetch(sqlite3_file* file, sqlite3_int64 off, int amount, void** out) noexcept {
    auto& f = as_wal(file);
    *out = nullptr;
    if (int const rc = flush(f); rc != SQLITE_OK) return rc;
    return f.real->pMethods->xFetch(f.real, off, amount, out);
}
inline int unfetch(sqlite3_file* file, sqlite3_int64 off, void* p) noexcept {
    auto& f = as_wal(file);
    return f.real->pMethods->xUnfetch(f.real, off, p);
}

[[nodiscard]] inline sqlite3_io_methods const& methods() noexcept {
    static sqlite3_io_methods const m = {
        .iVersion = 3,
        .xClose = close,
        .xRead = read,
        .xWrite = write,
        .xTruncate = truncate,
        .xSync = sync,
        .xFileSize = file_size,
        .xLock = lock,
        .xUnlock = unlock,
        .xCheckReservedLock = check_reserved_lock,
        .xFileControl = file_control,
        .xSectorSize = sector_size,
        .xDeviceCharacteristics = device_characteristics,
        .xShmMap = shm_map,
        .xShmLock = shm_lock,
        .xShmBarrier = shm_barrier,
        .xShmUnmap = shm_unmap,
        .xFetch = fetch,
        .xUnfetch = unfetch,
    };
    return m;
}

inline int open(sqlite3_vfs* vfs, char const* name, sqlite3_file* file, int flags, int* out_flags) noexcept {
    auto* base = base_of(vfs);
    // Everything but a WAL is the default VFS's file itself, opened in place (szOsFile is larger).
    if ((flags & SQLITE_OPEN_WAL) == 0) return base->xOpen(base, name, file, flags, out_flags);
    auto* real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<unsigned char*>(file) + real_file_offset);
    auto& f = *new (file) wal_file{{nullptr}, real, nullptr, 0, 0, 0, -1, false};
    int const rc = base->xOpen(base, name, real, flags, out_flags);
    if (rc != SQLITE_OK) {
        f.base.pMethods = nullptr;  // SQLite calls no xClose on a file whose open failed
        return rc;
    }
    f.base.pMethods = &methods();
    return SQLITE_OK;
}

// The rest of the VFS forwards to the default one, which must be called with its own object.
inline int remove(sqlite3_vfs* v, char const* name, int sync_dir) noexcept {
    return base_of(v)->xDelete(base_of(v), name, sync_dir);
}
inline int access(sqlite3_vfs* v, char const* name, int flags, int* out) noexcept {
    return base_of(v)->xAccess(base_of(v), name, flags, out);
}
inline int full_pathname(sqlite3_vfs* v, char const* name, int n, char* out) noexcept {
    return base_of(v)->xFullPathname(base_of(v), name, n, out);
}
inline void* dl_open(sqlite3_vfs* v, char const* name) noexcept { return base_of(v)->xDlOpen(base_of(v), name); }
inline void dl_error(sqlite3_vfs* v, int n, char* out) noexcept { base_of(v)->xDlError(base_of(v), n, out); }
inline void (*dl_sym(sqlite3_vfs* v, void* h, char const* sym))(void) {
    return base_of(v)->xDlSym(base_of(v), h, sym);
}
inline void dl_close(sqlite3_vfs* v, void* h) noexcept { base_of(v)->xDlClose(base_of(v), h); }
inline int randomness(sqlite3_vfs* v, int n, char* out) noexcept {
    return base_of(v)->xRandomness(base_of(v), n, out);
}
inline int sleep(sqlite3_vfs* v, int us) noexcept { return base_of(v)->xSleep(base_of(v), us); }
inline int current_time(sqlite3_vfs* v, double* out) noexcept { return base_of(v)->xCurrentTime(base_of(v), out); }
inline int last_error(sqlite3_vfs* v, int n, char* out) noexcept {
    return base_of(v)->xGetLastError ? base_of(v)->xGetLastError(base_of(v), n, out) : 0;
}
inline int current_time_int64(sqlite3_vfs* v, sqlite3_int64* out) noexcept {
    return base_of(v)->xCurrentTimeInt64(base_of(v), out);
}
inline int set_system_call(sqlite3_vfs* v, char const* name, sqlite3_syscall_ptr p) noexcept {
    return base_of(v)->xSetSystemCall(base_of(v), name, p);
}
inline sqlite3_syscall_ptr get_system_call(sqlite3_vfs* v, char const* name) noexcept {
    return base_of(v)->xGetSystemCall(base_of(v), name);
}
inline char const* next_system_call(sqlite3_vfs* v, char const* name) noexcept {
    return base_of(v)->xNextSystemCall(base_of(v), name);
}

}  // namespace wal_coalescing

/// The name of the coalescing VFS, registered (once per process, not as the default) over the
/// default VFS of the moment; nullptr when it cannot be registered — the caller then opens with
/// the default VFS, which is correct, only slower.
[[nodiscard]] inline char const* wal_coalescing_vfs() noexcept {
    static char const* const name = []() noexcept -> char const* {
        using namespace wal_coalescing;
        if (sqlite3_initialize() != SQLITE_OK) return nullptr;
        sqlite3_vfs* base = sqlite3_vfs_find(nullptr);
        if (!base || base->iVersion < 3) return nullptr;
        static vfs_state s{};
        s.base = base;
        auto& v = s.vfs;
        v.iVersion = 3;
        v.szOsFile = static_cast<int>(real_file_offset) + base->szOsFile;
        v.mxPathname = base->mxPathname;
        v.zName = vfs_name;
        v.pAppData = nullptr;
        v.xOpen = open;
        v.xDelete = remove;
        v.xAccess = access;
        v.xFullPathname = full_pathname;
        v.xDlOpen = dl_open;
        v.xDlError = dl_error;
        v.xDlSym = dl_sym;
        v.xDlClose = dl_close;
        v.xRandomness = randomness;
        v.xSleep = sleep;
        v.xCurrentTime = current_time;
        v.xGetLastError = last_error;
        v.xCurrentTimeInt64 = current_time_int64;
        v.xSetSystemCall = set_system_call;
        v.xGetSystemCall = get_system_call;
        v.xNextSystemCall = next_system_call;
        return sqlite3_vfs_register(&v, 0) == SQLITE_OK ? vfs_name : nullptr;
    }();
    return name;
}

}  // namespace berth::detail::sqlite
