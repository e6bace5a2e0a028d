package org.libagent;

/**
 * Callbacks of {@link AgentConnection#startListening}: one thread calls them one at a time, in
 * the order the daemon sent the messages. Every method has an empty default.
 *
 * <p>A callback that throws ends the listening: the connection is closed and
 * {@link #onClosed} receives the exception.
 */
public interface AgentListener {
  default void onData(DataMessage message) {}

  default void onMembership(MembershipMessage message) {}

  /** The daemon refused a request (e.g. code 8, already a member) or reports why it closes. */
  default void onError(ErrorMessage message) {}

  /** A history is complete ({@link AgentConnection#history}); its entries came to onData. */
  default void onHistoryEnd(HistoryEndMessage message) {}

  /**
   * The connection ended; the last call. {@code cause} is null after {@link
   * AgentConnection#close()}, otherwise why it ended (e.g. a {@link ConnectionClosedException}
   * when the daemon went away, or the exception a callback threw). Not called after {@link
   * AgentConnection#stopListening()}.
   */
  default void onClosed(Exception cause) {}
}
