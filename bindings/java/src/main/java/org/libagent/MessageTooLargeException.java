package org.libagent;

/**
 * A payload is larger than the daemon accepts ({@link AgentConnection#maxMessage()}). Thrown
 * before anything is sent.
 */
public class MessageTooLargeException extends AgentException {
  private static final long serialVersionUID = 1L;

  public MessageTooLargeException(String message) {
    super(message);
  }
}
