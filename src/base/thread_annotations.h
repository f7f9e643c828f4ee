// Clang thread-safety analysis attributes (the Abseil vocabulary). Under GCC they expand to nothing;
// the Clang build compiles with -Wthread-safety -Werror so every annotation here is checked.
#pragma once

#if defined(__clang__)
#define VB_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define VB_THREAD_ANNOTATION(x)
#endif

#define CAPABILITY(x) VB_THREAD_ANNOTATION(capability(x))
#define SCOPED_CAPABILITY VB_THREAD_ANNOTATION(scoped_lockable)
#define GUARDED_BY(x) VB_THREAD_ANNOTATION(guarded_by(x))
#define PT_GUARDED_BY(x) VB_THREAD_ANNOTATION(pt_guarded_by(x))
#define ACQUIRED_BEFORE(...) VB_THREAD_ANNOTATION(acquired_before(__VA_ARGS__))
#define ACQUIRED_AFTER(...) VB_THREAD_ANNOTATION(acquired_after(__VA_ARGS__))
#define REQUIRES(...) VB_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define REQUIRES_SHARED(...) VB_THREAD_ANNOTATION(requires_shared_capability(__VA_ARGS__))
#define ACQUIRE(...) VB_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define ACQUIRE_SHARED(...) VB_THREAD_ANNOTATION(acquire_shared_capability(__VA_ARGS__))
#define RELEASE(...) VB_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define RELEASE_SHARED(...) VB_THREAD_ANNOTATION(release_shared_capability(__VA_ARGS__))
#define RELEASE_GENERIC(...) VB_THREAD_ANNOTATION(release_generic_capability(__VA_ARGS__))
#define TRY_ACQUIRE(...) VB_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
#define EXCLUDES(...) VB_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define ASSERT_CAPABILITY(x) VB_THREAD_ANNOTATION(assert_capability(x))
#define RETURN_CAPABILITY(x) VB_THREAD_ANNOTATION(lock_returned(x))
#define NO_THREAD_SAFETY_ANALYSIS VB_THREAD_ANNOTATION(no_thread_safety_analysis)
