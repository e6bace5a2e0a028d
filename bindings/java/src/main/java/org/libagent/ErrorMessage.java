package org.libagent;

/**
 * The daemon refused a request, e.g. a join of a group the connection is already in (code 8).
 * Errors that end the session (slow client, shutting down) arrive as an ErrorMessage too; the
 * next receive then reports the closed connection.
 *
 * @param code the daemon's error code ({@link ErrorCode})
 * @param subject the group or name concerned; may be empty
 * @param text a sentence for a human
 */
public record ErrorMessage(int code, String subject, String text) implements Message {
  /** The code as an {@link ErrorCode}, or null for a code this binding does not know. */
  public ErrorCode errorCode() {
    return ErrorCode.fromCode(code);
  }
}
