package org.libagent;

/**
 * The daemon asked this TCP client to authenticate and refused its name or secret (error 20),
 * or there was nothing to answer with (no {@link Credentials} given and no
 * {@code AGENT_SECRET_FILE}), or the credentials could not be read.
 */
public class AuthFailedException extends RejectedException {
  private static final long serialVersionUID = 1L;

  public AuthFailedException(String message) {
    super(message, 20);
  }
}
