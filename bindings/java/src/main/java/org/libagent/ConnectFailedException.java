package org.libagent;

/** The daemon could not be reached, or it did not complete the handshake in time. */
public class ConnectFailedException extends AgentException {
  private static final long serialVersionUID = 1L;

  public ConnectFailedException(String message, Throwable cause) {
    super(message, cause);
  }
}
