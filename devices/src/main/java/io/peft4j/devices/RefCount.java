package io.peft4j.devices;

import java.util.concurrent.atomic.AtomicInteger;

/**
 * A reference count for native objects shared by concurrent runs: it starts at one (the owner's
 * reference), each user {@linkplain #acquire() takes} one and {@linkplain #release() gives it
 * back}, and once it has reached zero it can never be taken again, so the object is freed exactly
 * once and never used after.
 */
public final class RefCount {

    private final AtomicInteger refs = new AtomicInteger(1);

    /** Takes a reference; false when the count has reached zero (the object is gone). */
    public boolean acquire() {
        while (true) {
            int r = refs.get();
            if (r == 0) {
                return false;
            }
            if (refs.compareAndSet(r, r + 1)) {
                return true;
            }
        }
    }

    /** Gives a reference back; true when it was the last one (the caller frees the object). */
    public boolean release() {
        return refs.decrementAndGet() == 0;
    }
}
