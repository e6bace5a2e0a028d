package org.libagent;

import java.util.Objects;

/**
 * The end of a history ({@link AgentConnection#history}): its entries came before it as {@link
 * DataMessage}s with positions, and what the daemon held back meanwhile follows it (after a
 * history with join: the connection's own view of the group, then the live messages).
 *
 * @param group the group whose history this ends
 * @param count the number of entries sent (unsigned)
 * @param flags {@link #GAP}, {@link #FAILED}
 * @param position the last entry's position, or the requested start when none was sent: ask
 *     for the history after it to go on
 */
public record HistoryEndMessage(String group, long count, int flags, Position position)
    implements Message {
  /** Retention had removed messages after the requested start. */
  public static final int GAP = 0x01;
  /** The daemon could not read its log; an {@link ErrorMessage} (code 18) came first. */
  public static final int FAILED = 0x02;

  public HistoryEndMessage {
    Objects.requireNonNull(group, "group");
    Objects.requireNonNull(position, "position");
  }

  /** Retention had removed messages after the requested start: some are missing. */
  public boolean gap() {
    return (flags & GAP) != 0;
  }

  /** The daemon could not read its log; an error message (code 18) said why. */
  public boolean failed() {
    return (flags & FAILED) != 0;
  }
}
