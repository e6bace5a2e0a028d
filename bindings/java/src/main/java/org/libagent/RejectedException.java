package org.libagent;

/**
 * The daemon refused the connection for another reason, e.g. too many clients (16) or shutting
 * down (15); {@link #errorCode()} tells which.
 */
public class RejectedException extends AgentException {
  private static final long serialVersionUID = 1L;

  public RejectedException(String message, int errorCode) {
    super(message, errorCode, null);
  }
}
