package org.libagent;

/** The daemon sent bytes this binding cannot decode; the connection is closed. */
public class ProtocolException extends AgentException {
  private static final long serialVersionUID = 1L;

  public ProtocolException(String message) {
    super(message);
  }
}
