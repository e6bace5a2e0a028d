package org.libagent;

/**
 * A group name is empty, longer than 31 bytes or has a forbidden character; or a private group is
 * not of the form {@code #name#daemon}. Thrown before anything is sent.
 */
public class IllegalGroupException extends AgentException {
  private static final long serialVersionUID = 1L;

  public IllegalGroupException(String message) {
    super(message);
  }
}
