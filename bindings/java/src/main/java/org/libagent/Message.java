package org.libagent;

/**
 * What {@link AgentConnection#receive} returns: the daemon's one ordered stream of data,
 * membership and error messages, and the ends of histories. Switch on the record types:
 *
 * <pre>{@code
 * if (m instanceof DataMessage d) ...
 * else if (m instanceof MembershipMessage v) ...
 * else if (m instanceof ErrorMessage e) ...
 * else if (m instanceof HistoryEndMessage h) ...
 * }</pre>
 */
public sealed interface Message permits DataMessage, MembershipMessage, ErrorMessage,
    HistoryEndMessage {}
