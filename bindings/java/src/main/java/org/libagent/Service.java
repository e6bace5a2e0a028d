package org.libagent;

/**
 * The delivery service of a multicast; exactly one per message. The values are Spread's.
 * agentd delivers every service in its one total order, which satisfies all of them.
 */
public enum Service {
  /** May be lost. */
  UNRELIABLE(0x01),
  /** Not lost. */
  RELIABLE(0x02),
  /** Reliable, in the sender's order. */
  FIFO(0x04),
  /** Reliable, after everything that causally precedes it. */
  CAUSAL(0x08),
  /** One total order seen by every receiver. */
  AGREED(0x10),
  /** Agreed, delivered only once every daemon of the configuration has it. */
  SAFE(0x20);

  /** Added to a service's bits: the sender does not receive its own copy. */
  public static final int SELF_DISCARD = 0x40;
  /** The bits of the six services. */
  public static final int REGULAR_MASK = 0x3f;

  private final int bits;

  Service(int bits) {
    this.bits = bits;
  }

  /** Spread's value of this service. */
  public int bits() {
    return bits;
  }

  /** The strongest service whose bit is set in {@code flags}, or null when none is. */
  public static Service fromFlags(int flags) {
    Service[] all = values();
    for (int i = all.length - 1; i >= 0; --i) {
      if ((flags & all[i].bits) != 0) return all[i];
    }
    return null;
  }

  /**
   * True when {@code flags} are a valid multicast service: exactly one service bit, optionally
   * {@link #SELF_DISCARD}, nothing else (the daemon's rule).
   */
  public static boolean isValidMulticast(int flags) {
    int regular = flags & REGULAR_MASK;
    if (regular == 0 || (regular & (regular - 1)) != 0) return false;
    return (flags & ~(REGULAR_MASK | SELF_DISCARD)) == 0;
  }
}
