package org.libagent;

/**
 * The connection is closed: by {@link AgentConnection#close()}, by the daemon (after a bye, an
 * error such as slow client or shutting down, or a crash), or by an I/O error (the cause).
 */
public class ConnectionClosedException extends AgentException {
  private static final long serialVersionUID = 1L;

  public ConnectionClosedException(String message) {
    super(message);
  }

  public ConnectionClosedException(String message, Throwable cause) {
    super(message, cause);
  }
}
