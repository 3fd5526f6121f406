// new.cc - libmymalloc++: every replaceable global operator new and operator
// delete, served by mymalloc.  Each operator tells mymalloc which form it is,
// so the call counters of mymalloc_stats_get() show which overload ran and a
// misuse report names the operator the program called.
#include <cstddef>
#include <new>
#include "mymalloc.h"

#define MM_CXX_EXPORT __attribute__((visibility("default")))

namespace {

// The throwing forms: ask again after each call of the installed new_handler,
// and throw std::bad_alloc when there is none.
void *allocate_or_throw(std::size_t size, std::size_t alignment, mymalloc_call call)
{
    for (;;) {
        void *p = mymalloc_alloc_counted(size, alignment, call);
        if (p != nullptr)
            return p;
        std::new_handler handler = std::get_new_handler();
        if (handler == nullptr)
            throw std::bad_alloc();
        handler();
    }
}

// The nothrow forms behave as the throwing ones (the new_handler loop
// included) but return nullptr where those would throw.
void *allocate_or_null(std::size_t size, std::size_t alignment, mymalloc_call call) noexcept
{
    try {
        return allocate_or_throw(size, alignment, call);
    } catch (...) {
        return nullptr;
    }
}

inline std::size_t to_size(std::align_val_t alignment) { return static_cast<std::size_t>(alignment); }

} // namespace

MM_CXX_EXPORT void *operator new(std::size_t size)
{
    return allocate_or_throw(size, 0, MYMALLOC_CALL_NEW);
}

MM_CXX_EXPORT void *operator new[](std::size_t size)
{
    return allocate_or_throw(size, 0, MYMALLOC_CALL_NEW_ARRAY);
}

MM_CXX_EXPORT void *operator new(std::size_t size, const std::nothrow_t &) noexcept
{
    return allocate_or_null(size, 0, MYMALLOC_CALL_NEW_NOTHROW);
}

MM_CXX_EXPORT void *operator new[](std::size_t size, const std::nothrow_t &) noexcept
{
    return allocate_or_null(size, 0, MYMALLOC_CALL_NEW_ARRAY_NOTHROW);
}

MM_CXX_EXPORT void *operator new(std::size_t size, std::align_val_t alignment)
{
    return allocate_or_throw(size, to_size(alignment), MYMALLOC_CALL_NEW_ALIGNED);
}

MM_CXX_EXPORT void *operator new[](std::size_t size, std::align_val_t alignment)
{
    return allocate_or_throw(size, to_size(alignment), MYMALLOC_CALL_NEW_ARRAY_ALIGNED);
}

MM_CXX_EXPORT void *operator new(std::size_t size, std::align_val_t alignment, const std::nothrow_t &) noexcept
{
    return allocate_or_null(size, to_size(alignment), MYMALLOC_CALL_NEW_ALIGNED_NOTHROW);
}

MM_CXX_EXPORT void *operator new[](std::size_t size, std::align_val_t alignment, const std::nothrow_t &) noexcept
{
    return allocate_or_null(size, to_size(alignment), MYMALLOC_CALL_NEW_ARRAY_ALIGNED_NOTHROW);
}

MM_CXX_EXPORT void operator delete(void *p) noexcept
{
    mymalloc_free_counted(p, 0, 0, MYMALLOC_CALL_DELETE);
}

MM_CXX_EXPORT void operator delete[](void *p) noexcept
{
    mymalloc_free_counted(p, 0, 0, MYMALLOC_CALL_DELETE_ARRAY);
}

MM_CXX_EXPORT void operator delete(void *p, const std::nothrow_t &) noexcept
{
    mymalloc_free_counted(p, 0, 0, MYMALLOC_CALL_DELETE_NOTHROW);
}

MM_CXX_EXPORT void operator delete[](void *p, const std::nothrow_t &) noexcept
{
    mymalloc_free_counted(p, 0, 0, MYMALLOC_CALL_DELETE_ARRAY_NOTHROW);
}

// Sized forms: mymalloc checks the size against the block, so a wrong size
// from a buggy program is reported instead of corrupting the heap.
MM_CXX_EXPORT void operator delete(void *p, std::size_t size) noexcept
{
    mymalloc_free_counted(p, size, 0, MYMALLOC_CALL_DELETE_SIZED);
}

MM_CXX_EXPORT void operator delete[](void *p, std::size_t size) noexcept
{
    mymalloc_free_counted(p, size, 0, MYMALLOC_CALL_DELETE_ARRAY_SIZED);
}

MM_CXX_EXPORT void operator delete(void *p, std::align_val_t alignment) noexcept
{
    mymalloc_free_counted(p, 0, to_size(alignment), MYMALLOC_CALL_DELETE_ALIGNED);
}

MM_CXX_EXPORT void operator delete[](void *p, std::align_val_t alignment) noexcept
{
    mymalloc_free_counted(p, 0, to_size(alignment), MYMALLOC_CALL_DELETE_ARRAY_ALIGNED);
}

MM_CXX_EXPORT void operator delete(void *p, std::align_val_t alignment, const std::nothrow_t &) noexcept
{
    mymalloc_free_counted(p, 0, to_size(alignment), MYMALLOC_CALL_DELETE_ALIGNED_NOTHROW);
}

MM_CXX_EXPORT void operator delete[](void *p, std::align_val_t alignment, const std::nothrow_t &) noexcept
{
    mymalloc_free_counted(p, 0, to_size(alignment), MYMALLOC_CALL_DELETE_ARRAY_ALIGNED_NOTHROW);
}

MM_CXX_EXPORT void operator delete(void *p, std::size_t size, std::align_val_t alignment) noexcept
{
    mymalloc_free_counted(p, size, to_size(alignment), MYMALLOC_CALL_DELETE_SIZED_ALIGNED);
}

MM_CXX_EXPORT void operator delete[](void *p, std::size_t size, std::align_val_t alignment) noexcept
{
    mymalloc_free_counted(p, size, to_size(alignment), MYMALLOC_CALL_DELETE_ARRAY_SIZED_ALIGNED);
}
