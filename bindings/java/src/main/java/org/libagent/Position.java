package org.libagent;

/**
 * Where a message stands in the total order: the ring (configuration) that ordered it and its
 * ordinal there. The same at every daemon; later messages have greater positions. Positions
 * compare ring first, then ordinal, both as unsigned 64-bit numbers (carried in {@code long}).
 * Not dense: a group's messages skip the positions of other groups' messages.
 *
 * <p>Data messages carry one when they are history entries, or when the connection asked for
 * positions at connect; {@link HistoryEndMessage#position()} is where to ask from next time.
 *
 * @param ring the ring that ordered the message (unsigned)
 * @param ordinal the message's ordinal among that ring's messages (unsigned)
 */
public record Position(long ring, long ordinal) implements Comparable<Position> {
  /** Before every message: a history after it starts from the oldest message kept. */
  public static final Position START = new Position(0, 0);

  @Override
  public int compareTo(Position o) {
    int c = Long.compareUnsigned(ring, o.ring);
    return c != 0 ? c : Long.compareUnsigned(ordinal, o.ordinal);
  }

  /** True when this position comes after {@code o} in the total order. */
  public boolean isAfter(Position o) {
    return compareTo(o) > 0;
  }

  @Override
  public String toString() {
    return "(" + Long.toUnsignedString(ring) + ", " + Long.toUnsignedString(ordinal) + ")";
  }
}
