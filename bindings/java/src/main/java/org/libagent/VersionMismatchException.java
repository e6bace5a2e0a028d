package org.libagent;

/** The daemon does not speak the protocol version of this binding (daemon error 4). */
public class VersionMismatchException extends AgentException {
  private static final long serialVersionUID = 1L;

  public VersionMismatchException(String message) {
    super(message, 4, null);
  }
}
