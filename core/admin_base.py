from django.contrib import admin


class ViewOnlyAdmin(admin.ModelAdmin):
    """For records the system writes and people only read (cycle runs, learning data): an edit by hand would
    falsify what is computed from them. A consequence worth knowing: the admin refuses to delete a user or a
    bot whose deletion would cascade to such rows (it asks for delete permission on all that goes with it)."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
