#include "agentd/admin_actor.h"

#include "transport/client_protocol.h"

namespace agent::daemon {

const char* AdminActorState::name = "admin";

caf::behavior admin_actor(caf::stateful_actor<AdminActorState>* self,
                          std::shared_ptr<AdminPublished> published) {
  self->state.published = std::move(published);
  return {
      [=](admin_tick_atom, const SnapshotPtr& s) {
        auto& st = self->state;
        st.history.add(*s);
        if (!st.published) return;
        auto pages = std::make_shared<AdminPages>();
        pages->metrics = render_prometheus(*s);
        pages->status = render_json(*s, &st.history);
        st.published->set(std::move(pages));
      },
      [=](admin_query_atom, uint64_t conn, const std::string& command, uint8_t flags,
          const SnapshotPtr& s) {
        auto& h = self->state.history;
        std::string text = (flags & proto::kAdminJson) ? render_json(command, *s, h)
                                                       : render_text(command, *s, h);
        if (auto to = caf::actor_cast<caf::actor>(self->current_sender()))
          self->send(to, admin_answer_atom::value, conn, command, std::move(text));
      },
  };
}

}  // namespace agent::daemon
