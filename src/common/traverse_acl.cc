#include "common/traverse_acl.h"

#include <acl/libacl.h>
#include <sys/acl.h>

#include <cerrno>
#include <cstring>

namespace zeppelin {

namespace {

// Owns an ACL; `get` is the handle, which acl_create_entry and acl_calc_mask may replace.
struct OwnedAcl {
  acl_t get;
  explicit OwnedAcl(acl_t acl) : get(acl) {}
  OwnedAcl(const OwnedAcl&) = delete;
  OwnedAcl& operator=(const OwnedAcl&) = delete;
  ~OwnedAcl() {
    if (get != nullptr) acl_free(get);
  }
};

Error acl_error(const std::string& what, const std::string& dir) {
  const int err = errno;
  if (err == EOPNOTSUPP) {
    return make_error(Errc::kInternal, "cannot " + what + " on " + dir +
                                           ": its filesystem does not support POSIX ACLs; give the volume a "
                                           "`source:` directory the account can reach instead");
  }
  return make_error(Errc::kInternal, "cannot " + what + " on " + dir + ": " + std::strerror(err));
}

// The ACL_USER entry for `uid`, or nullptr.
acl_entry_t find_user_entry(acl_t acl, uid_t uid) {
  acl_entry_t entry;
  for (int id = ACL_FIRST_ENTRY; acl_get_entry(acl, id, &entry) == 1; id = ACL_NEXT_ENTRY) {
    acl_tag_t tag;
    if (acl_get_tag_type(entry, &tag) != 0 || tag != ACL_USER) continue;
    auto* qualifier = static_cast<uid_t*>(acl_get_qualifier(entry));
    const bool match = qualifier != nullptr && *qualifier == uid;
    acl_free(qualifier);
    if (match) return entry;
  }
  return nullptr;
}

// The entry tagged `tag` (one of the singletons: ACL_USER_OBJ, ACL_GROUP_OBJ, ACL_MASK, ACL_OTHER), or nullptr.
acl_entry_t find_tag(acl_t acl, acl_tag_t wanted) {
  acl_entry_t entry;
  for (int id = ACL_FIRST_ENTRY; acl_get_entry(acl, id, &entry) == 1; id = ACL_NEXT_ENTRY) {
    acl_tag_t tag;
    if (acl_get_tag_type(entry, &tag) == 0 && tag == wanted) return entry;
  }
  return nullptr;
}

bool has_named_entries(acl_t acl) {
  acl_entry_t entry;
  for (int id = ACL_FIRST_ENTRY; acl_get_entry(acl, id, &entry) == 1; id = ACL_NEXT_ENTRY) {
    acl_tag_t tag;
    if (acl_get_tag_type(entry, &tag) == 0 && (tag == ACL_USER || tag == ACL_GROUP)) return true;
  }
  return false;
}

// Sets `entry`'s permissions to exactly `perm` (0 for none).
int set_perms(acl_entry_t entry, acl_perm_t perm) {
  acl_permset_t permset;
  if (acl_get_permset(entry, &permset) != 0 || acl_clear_perms(permset) != 0) return -1;
  if (perm != 0 && acl_add_perm(permset, perm) != 0) return -1;
  return acl_set_permset(entry, permset);
}

// True when `entry` grants nothing beyond `allowed`.
bool perms_within(acl_entry_t entry, int allowed) {
  acl_permset_t permset;
  if (acl_get_permset(entry, &permset) != 0) return false;
  for (acl_perm_t perm : {ACL_READ, ACL_WRITE, ACL_EXECUTE}) {
    if ((allowed & perm) == 0 && acl_get_perm(permset, perm) != 0) return false;
  }
  return true;
}

}  // namespace

Status grant_traverse(const std::string& dir, uid_t uid) {
  const std::string what = "give uid " + std::to_string(uid) + " search permission";
  OwnedAcl acl(acl_get_file(dir.c_str(), ACL_TYPE_ACCESS));
  if (acl.get == nullptr) return acl_error(what, dir);
  acl_entry_t entry = find_user_entry(acl.get, uid);
  if (entry == nullptr && (acl_create_entry(&acl.get, &entry) != 0 || acl_set_tag_type(entry, ACL_USER) != 0 ||
                           acl_set_qualifier(entry, &uid) != 0)) {
    return acl_error(what, dir);
  }
  // The mask is the union of the group class: with the owning group at ---,
  // it is --x, and so are the group bits of the mode.
  acl_entry_t group = find_tag(acl.get, ACL_GROUP_OBJ);
  if (set_perms(entry, ACL_EXECUTE) != 0 || group == nullptr || set_perms(group, 0) != 0 ||
      acl_calc_mask(&acl.get) != 0 || acl_set_file(dir.c_str(), ACL_TYPE_ACCESS, acl.get) != 0) {
    return acl_error(what, dir);
  }
  return ok_status();
}

Status revoke_traverse(const std::string& dir, uid_t uid) {
  const std::string what = "remove uid " + std::to_string(uid) + "'s search permission";
  OwnedAcl acl(acl_get_file(dir.c_str(), ACL_TYPE_ACCESS));
  if (acl.get == nullptr) return errno == ENOENT ? ok_status() : Status(acl_error(what, dir));
  acl_entry_t entry = find_user_entry(acl.get, uid);
  if (entry == nullptr) return ok_status();
  if (acl_delete_entry(acl.get, entry) != 0) return acl_error(what, dir);
  if (has_named_entries(acl.get)) {
    if (acl_calc_mask(&acl.get) != 0) return acl_error(what, dir);
  } else if (acl_entry_t mask = find_tag(acl.get, ACL_MASK); mask != nullptr && acl_delete_entry(acl.get, mask) != 0) {
    return acl_error(what, dir);  // without a mask the ACL is the plain mode again
  }
  if (acl_set_file(dir.c_str(), ACL_TYPE_ACCESS, acl.get) != 0) return acl_error(what, dir);
  return ok_status();
}

bool is_traverse_only_acl(const std::string& path) {
  OwnedAcl acl(acl_get_file(path.c_str(), ACL_TYPE_ACCESS));
  if (acl.get == nullptr || acl_equiv_mode(acl.get, nullptr) != 1) return false;  // none, or plain mode bits
  acl_entry_t entry;
  for (int id = ACL_FIRST_ENTRY; acl_get_entry(acl.get, id, &entry) == 1; id = ACL_NEXT_ENTRY) {
    acl_tag_t tag;
    if (acl_get_tag_type(entry, &tag) != 0) return false;
    if (tag == ACL_GROUP) return false;
    if (tag == ACL_GROUP_OBJ && !perms_within(entry, 0)) return false;
    if (tag == ACL_USER && !perms_within(entry, ACL_EXECUTE)) return false;
  }
  return true;
}

}  // namespace zeppelin
