package org.libagent;

import java.util.List;
import java.util.Objects;

/**
 * A group's membership changed. Delivered only to connections that asked for membership
 * messages, in the same stream and order as data.
 *
 * <ul>
 *   <li>JOIN: every member, the joiner included, gets the new view; {@code changed} is the
 *       joiner; one vs-set holding it.
 *   <li>LEAVE: the remaining members get the new view; the leaver gets a self-leave notice
 *       ({@link #selfLeave()}: no members, {@code changed} and the one vs-set naming it).
 *   <li>DISCONNECT: like LEAVE for each group the member was in, no self-leave notice.
 *   <li>NETWORK: a transitional view then a regular view; {@code changed} is empty; the vs-sets
 *       list who came together from the same previous view.
 * </ul>
 *
 * @param group the group
 * @param members the members, private groups sorted bytewise (unmodifiable)
 * @param changed who joined, left or disconnected; "" for network changes
 * @param viewConfig the configuration the view was installed in (an unsigned 64-bit number)
 * @param viewSeq position of the view's cause in the total order (unsigned 64-bit)
 * @param reason what caused the change
 * @param transitional a transitional view (Spread's TRANSITION_MESS)
 * @param selfLeave this connection's own leave notice (CAUSED_BY_LEAVE without REG_MEMB_MESS)
 * @param vsSets the virtual-synchrony sets (unmodifiable)
 * @param serviceFlags the raw service bits, e.g. {@code REG_MEMB_MESS | CAUSED_BY_JOIN}
 */
public record MembershipMessage(String group, List<String> members, String changed,
    long viewConfig, long viewSeq, Reason reason, boolean transitional, boolean selfLeave,
    List<List<String>> vsSets, int serviceFlags) implements Message {

  public static final int CAUSED_BY_JOIN = 0x100;
  public static final int CAUSED_BY_LEAVE = 0x200;
  public static final int CAUSED_BY_DISCONNECT = 0x400;
  public static final int CAUSED_BY_NETWORK = 0x800;
  public static final int REG_MEMB_MESS = 0x1000;
  public static final int TRANSITION_MESS = 0x2000;

  /** What changed a group's membership. */
  public enum Reason {
    JOIN,
    LEAVE,
    DISCONNECT,
    NETWORK;

    /** The reason named by a membership message's service bits, or null when none is. */
    public static Reason fromFlags(int flags) {
      if ((flags & CAUSED_BY_JOIN) != 0) return JOIN;
      if ((flags & CAUSED_BY_LEAVE) != 0) return LEAVE;
      if ((flags & CAUSED_BY_DISCONNECT) != 0) return DISCONNECT;
      if ((flags & CAUSED_BY_NETWORK) != 0) return NETWORK;
      return null;
    }
  }

  public MembershipMessage {
    Objects.requireNonNull(group, "group");
    members = List.copyOf(members);
    Objects.requireNonNull(changed, "changed");
    Objects.requireNonNull(reason, "reason");
    vsSets = vsSets.stream().map(List::copyOf).toList();
  }

  /** A regular view (Spread's REG_MEMB_MESS). */
  public boolean regular() {
    return (serviceFlags & REG_MEMB_MESS) != 0;
  }
}
