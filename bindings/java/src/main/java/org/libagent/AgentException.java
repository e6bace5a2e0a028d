package org.libagent;

/**
 * The base of every exception this binding throws. Unchecked: most failures (an illegal group
 * name, a closed connection) are programming errors or end the session, and unchecked exceptions
 * keep listener lambdas and streams usable. Catch {@code AgentException} to handle them all.
 *
 * <p>{@link #errorCode()} is the daemon's error code (docs/client-protocol.md) when the daemon
 * reported the failure, or 0 when the binding detected it itself before sending anything.
 */
public class AgentException extends RuntimeException {
  private static final long serialVersionUID = 1L;
  private final int errorCode;

  public AgentException(String message) {
    this(message, 0, null);
  }

  public AgentException(String message, Throwable cause) {
    this(message, 0, cause);
  }

  public AgentException(String message, int errorCode, Throwable cause) {
    super(message, cause);
    this.errorCode = errorCode;
  }

  /** The daemon's error code, or 0 when the failure was found on the client side. */
  public int errorCode() {
    return errorCode;
  }
}
