package org.libagent;

/** Another connection of the same daemon already uses this private name (daemon error 6). */
public class NameTakenException extends AgentException {
  private static final long serialVersionUID = 1L;

  public NameTakenException(String message) {
    super(message, 6, null);
  }
}
