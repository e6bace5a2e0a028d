package org.libagent;

/** A multicast names no group or more than 256 groups. Thrown before anything is sent. */
public class BadGroupCountException extends AgentException {
  private static final long serialVersionUID = 1L;

  public BadGroupCountException(String message) {
    super(message);
  }
}
