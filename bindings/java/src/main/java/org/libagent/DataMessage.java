package org.libagent;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * A multicast or private message.
 *
 * @param sender the sender's private group, {@code #name#daemon}
 * @param groups the groups the message was sent to, as the sender listed them (unmodifiable)
 * @param msgType the sender's message type
 * @param service the service the sender chose
 * @param data the payload; the array is not copied, the message owns it
 * @param selfDiscard the sender asked not to receive its own copy ({@link Service#SELF_DISCARD})
 * @param position its place in the total order: on history entries, and on live messages when
 *     the connection asked for positions at connect; else null
 */
public record DataMessage(String sender, List<String> groups, short msgType, Service service,
    byte[] data, boolean selfDiscard, Position position) implements Message {

  public DataMessage {
    Objects.requireNonNull(sender, "sender");
    groups = List.copyOf(groups);
    Objects.requireNonNull(service, "service");
    Objects.requireNonNull(data, "data");
  }

  /** A message without a position. */
  public DataMessage(String sender, List<String> groups, short msgType, Service service,
      byte[] data, boolean selfDiscard) {
    this(sender, groups, msgType, service, data, selfDiscard, null);
  }

  /** The payload decoded as UTF-8. */
  public String text() {
    return new String(data, StandardCharsets.UTF_8);
  }

  /** The service bits as they travelled: the service plus SELF_DISCARD if set. */
  public int serviceFlags() {
    return service.bits() | (selfDiscard ? Service.SELF_DISCARD : 0);
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof DataMessage m && sender.equals(m.sender) && groups.equals(m.groups)
        && msgType == m.msgType && service == m.service && selfDiscard == m.selfDiscard
        && Arrays.equals(data, m.data) && Objects.equals(position, m.position);
  }

  @Override
  public int hashCode() {
    return Objects.hash(sender, groups, msgType, service, selfDiscard, position) * 31
        + Arrays.hashCode(data);
  }

  @Override
  public String toString() {
    return "DataMessage[sender=" + sender + ", groups=" + groups + ", msgType=" + msgType
        + ", service=" + service + (selfDiscard ? "|SELF_DISCARD" : "") + ", " + data.length
        + " bytes" + (position == null ? "" : ", position=" + position) + "]";
  }
}
