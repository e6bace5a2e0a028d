package org.libagent;

/**
 * The daemon's rules for names (transport/names.cpp), checked before anything is sent. They are
 * Spread's limits: every group name fits Spread's MAX_GROUP_NAME (32 bytes with the NUL).
 *
 * <p>A valid character is printable ASCII without space and {@code #} (0x21..0x7e except 0x23).
 */
public final class Names {
  /** Longest group name, private groups included. */
  public static final int MAX_GROUP = 31;
  /** Longest private name (the name a client connects with). */
  public static final int MAX_PRIVATE_NAME = 10;
  /** Longest daemon name. */
  public static final int MAX_DAEMON_NAME = 19;

  private Names() {}

  /** Printable ASCII except space and {@code #}. */
  public static boolean validChar(char c) {
    return c > ' ' && c < 0x7f && c != '#';
  }

  private static boolean allValid(String s, int from, int to) {
    for (int i = from; i < to; ++i) {
      if (!validChar(s.charAt(i))) return false;
    }
    return true;
  }

  public static boolean isValidPrivateName(String name) {
    return name != null && !name.isEmpty() && name.length() <= MAX_PRIVATE_NAME
        && allValid(name, 0, name.length());
  }

  public static boolean isValidDaemonName(String name) {
    return name != null && !name.isEmpty() && name.length() <= MAX_DAEMON_NAME
        && allValid(name, 0, name.length());
  }

  /** A public group: 1..31 valid characters. What join and leave accept. */
  public static boolean isValidGroup(String group) {
    return group != null && !group.isEmpty() && group.length() <= MAX_GROUP
        && allValid(group, 0, group.length());
  }

  /** {@code #name#daemon} with a valid private name and daemon name, at most 31 bytes. */
  public static boolean isPrivateGroup(String group) {
    if (group == null || group.length() < 4 || group.length() > MAX_GROUP) return false;
    if (group.charAt(0) != '#') return false;
    int second = group.indexOf('#', 1);
    if (second < 0) return false;
    return isValidPrivateName(group.substring(1, second))
        && isValidDaemonName(group.substring(second + 1));
  }

  /** A public or a private group: what a multicast may address. */
  public static boolean isValidDestination(String group) {
    return isValidGroup(group) || isPrivateGroup(group);
  }

  /** Why a private name is refused ("private name is valid" when it is not). */
  public static String explainPrivateName(String name) {
    String e = explain("private name", name, MAX_PRIVATE_NAME);
    return e == null ? "private name is valid" : e;
  }

  /** Why a group name is refused ("group name is valid" when it is not). */
  public static String explainGroup(String group) {
    if (group != null && !group.isEmpty() && group.charAt(0) == '#') {
      if (isPrivateGroup(group)) return "group name is valid";
      return "group name " + quote(group)
          + " starts with '#' but is not a private group of the form #name#daemon";
    }
    String e = explain("group name", group, MAX_GROUP);
    return e == null ? "group name is valid" : e;
  }

  private static String explain(String what, String s, int max) {
    if (s == null) return what + " is null";
    if (s.isEmpty()) return what + " is empty";
    if (s.length() > max) {
      return what + " " + quote(s) + " is " + s.length() + " characters, the limit is " + max;
    }
    if (!allValid(s, 0, s.length())) {
      return what + " " + quote(s)
          + " has a forbidden character (allowed: printable ASCII except space and '#')";
    }
    return null;
  }

  static String quote(String s) {
    StringBuilder b = new StringBuilder("\"");
    for (int i = 0; i < s.length() && i < 64; ++i) {
      char c = s.charAt(i);
      if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') b.append(c);
      else b.append(String.format("\\u%04x", (int) c));
    }
    if (s.length() > 64) b.append("...");
    return b.append('"').toString();
  }
}
