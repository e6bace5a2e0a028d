package org.libagent;

/** The error codes of the daemon's error frames (docs/client-protocol.md). */
public enum ErrorCode {
  MALFORMED_FRAME(1, "malformed frame"),
  FRAME_TOO_LARGE(2, "frame too large"),
  UNKNOWN_VERB(3, "unknown verb"),
  VERSION_MISMATCH(4, "version mismatch"),
  ILLEGAL_NAME(5, "illegal private name"),
  NAME_TAKEN(6, "private name taken"),
  ILLEGAL_GROUP(7, "illegal group name"),
  ALREADY_MEMBER(8, "already a member"),
  NOT_MEMBER(9, "not a member"),
  MESSAGE_TOO_LARGE(10, "message too large"),
  ILLEGAL_SERVICE(11, "illegal service"),
  NOT_CONNECTED(12, "not connected"),
  BAD_GROUP_COUNT(13, "bad group count"),
  SLOW_CLIENT(14, "slow client disconnected"),
  SHUTTING_DOWN(15, "daemon shutting down"),
  TOO_MANY_CLIENTS(16, "too many clients"),
  /** History of a group the daemon keeps no log of. */
  NOT_PERSISTENT(17, "not a persistent group"),
  /** The daemon's message log could not be read or written; a history ends with failed. */
  LOG_FAILED(18, "message log failed"),
  /** An access rule does not let this client join, read or send to the group. */
  ACCESS_DENIED(19, "access denied"),
  /** Authentication was required and not given, or the name or secret was refused. */
  AUTH_FAILED(20, "authentication failed");

  private final int code;
  private final String description;

  ErrorCode(int code, String description) {
    this.code = code;
    this.description = description;
  }

  /** The code on the wire. */
  public int code() {
    return code;
  }

  /** A few words for a human, as the daemon's reference codec names the code. */
  public String description() {
    return description;
  }

  /** The constant for a wire code, or null for a code this binding does not know. */
  public static ErrorCode fromCode(int code) {
    for (ErrorCode c : values()) {
      if (c.code == code) return c;
    }
    return null;
  }
}
