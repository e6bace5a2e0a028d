package org.libagent;

/**
 * A private name is empty, longer than 10 bytes or has a character outside 0x21..0x7e or a {@code
 * #} (daemon error 5 when the daemon refused it).
 */
public class IllegalNameException extends AgentException {
  private static final long serialVersionUID = 1L;

  public IllegalNameException(String message, int errorCode) {
    super(message, errorCode, null);
  }
}
