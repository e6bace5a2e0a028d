package org.libagent;

/**
 * A multicast service is not exactly one service, optionally with SELF_DISCARD. Thrown before
 * anything is sent.
 */
public class IllegalServiceException extends AgentException {
  private static final long serialVersionUID = 1L;

  public IllegalServiceException(String message) {
    super(message);
  }
}
